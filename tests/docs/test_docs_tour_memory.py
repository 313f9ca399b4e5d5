"""The tour fits mybinder: executed in a fresh kernel, its process tree stays under 1.5 GB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_BYTES = 1.5e9  # mybinder gives about 2 GB; leave room for JupyterLab itself
TOUR_BUDGET_S = 90


@pytest.mark.slow
def test_the_tour_runs_under_the_binder_memory_budget(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "notebook_memory.py"), str(repo_root / "notebooks" / "00_tour.ipynb")],
        capture_output=True, text=True, timeout=TOUR_BUDGET_S * 3, cwd=repo_root,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no measurement; stderr:\n{result.stderr[-3000:]}"
    figures = json.loads(lines[-1])
    assert figures["ok"], f"a cell of the tour failed: {figures['error']}"
    assert figures["peak_rss_bytes"] > 50e6, "the sampler saw no kernel: the measurement is broken"
    assert figures["peak_rss_bytes"] < LIMIT_BYTES, f"the tour peaked at {figures['peak_rss_gb']} GB (limit 1.5 GB)"
    assert figures["seconds"] < TOUR_BUDGET_S, f"the tour took {figures['seconds']} s (budget {TOUR_BUDGET_S} s)"
