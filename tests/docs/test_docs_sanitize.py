"""notebooks/nbval_sanitize.cfg: volatile values become placeholders, stable ones stay."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns


@pytest.fixture(scope="module")
def sanitize(repo_root: Path):  # noqa: ANN201
    patterns = get_sanitize_patterns((repo_root / "notebooks" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 10

    def apply(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    return apply


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("created 2026-11-26T13:54:38.123456+00:00", "created 2027-01-02T03:04:05.6+00:00"),
        ("<td>2026-11-26 14:29:44 UTC</td>", "<td>2026-12-01 09:00:01 UTC</td>"),
        ("<Job job-3f2a9c1b7d4e 'fit' succeeded 3.5s", "<Job job-0123456789ab 'fit' succeeded 12.0s"),
        ("lease-cbfe3b0b42a2 and prof-588b61ebbccc", "lease-000000000000 and prof-ffffffffffff"),
        ("home='/tmp/workbench-tour-h38funj2'", "home='/tmp/workbench-tour-zz9'"),
        ("<function f at 0x7f3a2c1b9d30>", "<function f at 0x55d0c0ffee00>"),
        ("tcp://127.0.0.1:40213", "tcp://127.0.0.1:8786"),
        ("GPU-5e1f0c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6", "GPU-00000000-0000-0000-0000-000000000000"),
        ("/work/main/data/fleets/h100_2x8.toml", "/home/runner/work/wb/wb/data/fleets/h100_2x8.toml"),
        ("/work/main/.nbval-home/jobs/job-3f2a9c1b7d4e/job.log", "/ci/.nbval-home/jobs/job-aaaaaaaaaaaa/job.log"),
    ],
)
def test_volatile_values_compare_equal(sanitize, one: str, other: str) -> None:  # noqa: ANN001
    assert sanitize(one) == sanitize(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("1,213 nodes, 6,212 GPUs", "1,213 nodes, 6,211 GPUs"),
        ("3g.40gb@4, 2g.20gb@0", "3g.40gb@0, 2g.20gb@4"),
        ("loss 17.5 → 0.14", "loss 17.5 → 0.41"),
        ("<KernelResults 15 cases: 10 ok, 0 failed, 5 skipped>", "<KernelResults 15 cases: 9 ok, 1 failed, 5 skipped>"),
        ("HBM: 3.35 TB/s", "HBM: 2.04 TB/s"),
        ("state: active", "state: queued"),
    ],
)
def test_the_facts_a_notebook_checks_still_differ(sanitize, one: str, other: str) -> None:  # noqa: ANN001
    assert sanitize(one) != sanitize(other)
