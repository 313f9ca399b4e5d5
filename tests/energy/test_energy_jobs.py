"""The energy service as the jobs service uses it: a real job's energy and carbon, a deferred start."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench.energy.meter import DEFAULT_POWERCAP, _rapl_files
from workbench.store.models.jobs import JobRow

WORK = "total = 0\nfor i in range(2_000_000):\n    total += i * i\nprint(total)\n"


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "work.py"
    path.write_text(WORK)
    return str(path)


def test_a_job_records_its_energy_and_carbon(wb, script: str) -> None:
    job = wb.jobs.wait(wb.jobs.submit(script, slice="cpu").id, timeout=120)
    assert job.state == "succeeded"
    with wb.store.session() as s:
        row = s.get(JobRow, job.id)
        assert row.energy_j is not None and row.energy_j > 0
        # a CPU slice: measured where RAPL is readable, else the estimate, labelled as one
        assert row.energy_estimated is (not _rapl_files(DEFAULT_POWERCAP))
        assert row.avg_power_w > 0 and row.carbon_g > 0
        started, ended = row.started_at, row.ended_at
    expected = wb.energy.carbon_g(row.energy_j, started, ended)
    assert abs(row.carbon_g - expected) <= 0.05 * expected
    totals = wb.energy.summary(ended - dt.timedelta(hours=1))
    assert int(totals["jobs"].sum()) == 1


def test_a_deferrable_job_waits_for_the_planned_start(wb, script: str) -> None:
    job = wb.jobs.submit(script, slice="cpu", deferrable=True, deadline="12h", expected_duration="30m")
    try:
        with wb.store.session() as s:
            row = s.get(JobRow, job.id)
            assert row.deferrable and row.deadline_at is not None
            not_before, deadline_at = row.not_before, row.deadline_at
        if not_before is not None:  # later than now: the planner found a cleaner hour
            assert not_before + dt.timedelta(minutes=30) <= deadline_at + dt.timedelta(seconds=1)
    finally:
        wb.jobs.cancel(job.id)
