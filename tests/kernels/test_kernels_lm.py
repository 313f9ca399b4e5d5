"""examples/kernels_lm.py: a small transformer LM trained a few steps with the kernels (interpreters)
has the loss curve of the same model trained with the references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compare(framework: str, tmp_path: Path) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1", WORKBENCH_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "kernels_lm.py"), "--framework", framework,
                           "--compare", "--small", "--steps", "3", "--json"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_training_with_the_kernels_follows_the_reference_loss_curve(framework: str, tmp_path: Path) -> None:
    report = _compare(framework, tmp_path)
    assert len(report["kernels"]) == len(report["reference"]) == 3
    assert report["ok"] and report["max_rel_diff"] <= report["rtol"] == 1e-4, report
    assert report["kernels"][-1] < report["kernels"][0]  # it learns


def test_the_corpus_is_the_packages_own_source() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import kernels_lm
    finally:
        sys.path.remove(str(ROOT / "examples"))
    ids, vocab = kernels_lm.corpus(10_000)
    assert len(ids) == 10_000 and "def" in "".join(vocab[i] for i in ids[:5000])
    assert 40 < len(vocab) < 200
