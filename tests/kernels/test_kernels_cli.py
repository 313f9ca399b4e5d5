"""`workbench kernels ...`: the JSON contract and the exit codes.

The 180 s budget of `check --all` is measured by `benchmarks/kernels.py`, not asserted here:
a shared 2-core machine is too noisy for timed tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CONTRACT = {"kernel", "backend", "dtype", "shape", "max_abs_err", "max_rel_err", "ok", "skipped_reason", "pass"}


def _workbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "workbench", "kernels", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


@pytest.mark.slow
def test_check_all_prints_the_contract() -> None:
    out = _workbench("check", "--all", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert {(r["kernel"], r["backend"]) for r in results} == {
        (k, b) for k in ("attention", "layer_norm", "matmul", "rms_norm", "softmax") for b in ("triton", "pallas")}
    assert {(r["kernel"], r["pass"]) for r in results} == {
        *((k, "fwd") for k in ("attention", "layer_norm", "matmul", "rms_norm", "softmax")),
        *((k, "bwd") for k in ("attention", "layer_norm", "rms_norm", "softmax"))}
    for r in results:
        assert CONTRACT <= set(r)
        assert r["ok"] is not False, r
        if r["ok"] is None:
            assert r["backend"] == "triton" and r["dtype"] == "bfloat16" and "interpreter" in r["skipped_reason"]


def test_a_failing_check_exits_non_zero_and_says_why() -> None:
    out = _workbench("check", "softmax", "--backend", "pallas", "--shape", "3x4x5", "--json")
    assert out.returncode == 1
    [result] = json.loads(out.stdout)[:1]
    assert result["ok"] is False and "softmax (pallas, float32, 3x4x5)" in result["error"]


def test_names_or_all_is_required() -> None:
    out = _workbench("check")
    assert out.returncode == 1 and "--all" in out.stderr


def test_bench_json_has_null_timings_in_interpreter_mode() -> None:
    out = _workbench("bench", "softmax", "matmul", "--backend", "triton", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert {r["kernel"] for r in results} == {"softmax", "matmul"}
    for r in results:
        assert r["median_ms"] is None and r["gbps"] is None and r["tflops"] is None and r["baseline_ms"] is None
        assert "interpreter mode" in r["skipped_reason"]
        assert r["flops"] > 0 and r["bytes"] > 0


def test_list_json() -> None:
    out = _workbench("list", "--json")
    assert out.returncode == 0
    assert len(json.loads(out.stdout)) == 10
