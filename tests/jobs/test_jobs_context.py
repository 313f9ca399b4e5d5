"""Inside a job, without Dask: `workbench.log`, the metrics files, the runner's outcome and log."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

import workbench
from workbench.errors import InvalidRequest
from workbench.jobs import context, metrics
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.runner import attempt_path, read_outcome, run_job
from workbench.jobs.targets import check_framework
from workbench.units import parse_duration_s as parse_duration


@pytest.fixture
def ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = JobContext("job-test", tmp_path, None)
    context.activate(c)
    yield c
    context.activate(None)
    c.close()


def test_log_rows_become_a_dataset_with_step_dimension(ctx: JobContext, tmp_path: Path) -> None:
    for i in range(5):
        workbench.log(step=i, loss=1.0 / (i + 1), acc=np.float32(0.5))
    workbench.log(val_loss=0.25)  # step defaults to the previous + 1
    ctx.flush()
    ds = metrics.load(tmp_path, final=False)
    assert list(ds["step"].values) == [0, 1, 2, 3, 4, 5]
    assert ds["loss"].values[:5] == pytest.approx([1, 0.5, 1 / 3, 0.25, 0.2])
    assert math.isnan(float(ds["loss"].values[5]))
    assert float(ds["val_loss"].values[5]) == 0.25
    assert (np.diff(ds["time_s"].values) >= 0).all()
    assert ds["time_s"].attrs["units"] == "s"


def test_netcdf_round_trip(ctx: JobContext, tmp_path: Path) -> None:
    for i in range(100):
        workbench.log(step=i, loss=float(i))
    ctx.flush()
    path = metrics.write_netcdf(tmp_path, {"job_id": "job-test"})
    assert path is not None and path.name == "metrics.nc"
    ds = metrics.load(tmp_path, final=True)
    assert ds.sizes["step"] == 100
    assert ds["step"].dtype == np.int64
    assert float(ds["loss"].sel(step=42)) == 42.0
    assert ds.attrs["job_id"] == "job-test"


def test_a_half_written_last_line_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 0, "loss": 1.0}\n{"step": 1, "lo')
    assert metrics.read_rows(tmp_path) == [{"step": 0, "loss": 1.0}]


def test_log_raises_jobcancelled_once_cancel_is_requested(ctx: JobContext) -> None:
    workbench.log(step=0, loss=1.0)
    ctx.request_cancel()
    with pytest.raises(JobCancelled):
        workbench.log(step=1, loss=0.5)
    assert issubclass(JobCancelled, BaseException) and not issubclass(JobCancelled, Exception)


def test_non_numbers_are_warned_about_and_left_out(ctx: JobContext, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not a number"):
        workbench.log(step=0, loss=1.0, note="hello")
    ctx.flush()
    assert metrics.read_rows(tmp_path)[0].keys() >= {"loss", "step"}
    assert "note" not in metrics.read_rows(tmp_path)[0]


def test_automatic_figures_are_sampled(ctx: JobContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_SAMPLE_EVERY_S", 0.0)
    for i in range(3):
        workbench.log(step=i * 10, loss=1.0)
    ctx.flush()
    rows = metrics.read_rows(tmp_path)
    assert all(r["host_memory_bytes"] > 1e6 for r in rows)
    assert rows[2]["steps_per_s"] > 0


def test_outside_a_job_log_does_nothing_and_artifacts_go_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_JOB_FOLDER", raising=False)
    context.activate(None)
    workbench.log(step=0, loss=1.0)
    assert workbench.artifacts_dir() == tmp_path / "artifacts"
    assert not (tmp_path / "metrics.jsonl").exists()


def _raises() -> None:
    print("about to fail")
    raise ValueError("boom from the job")


def test_runner_records_a_failure_with_its_traceback(tmp_path: Path) -> None:
    spec = {"job_id": "job-r", "folder": str(tmp_path), "log_path": str(tmp_path / "job.log"), "kind": "callable",
            "fn": _raises, "params": {}, "attempt": 1, "cwd": str(tmp_path)}
    outcome = run_job(spec)
    assert outcome["state"] == "failed"
    assert outcome["reason"] == "ValueError: boom from the job"
    assert "Traceback" in outcome["error"] and "boom from the job" in outcome["error"]
    log = (tmp_path / "job.log").read_text()
    assert "about to fail" in log and "Traceback" in log and "ValueError: boom from the job" in log
    # The same attempt started again (Dask re-ran it after losing its worker) is a dead worker, not a second run.
    again = run_job(spec)
    assert again["state"] == "failed" and again["reason"] == "worker died"
    # The attempt's file holds the first run's outcome (what a restarted workbench reads).
    recorded = read_outcome(tmp_path, 1)
    assert recorded["state"] == "failed" and recorded["reason"] == "ValueError: boom from the job"


def test_an_attempt_that_started_and_never_ended_has_no_outcome(tmp_path: Path) -> None:
    attempt_path(tmp_path, 2).write_bytes(b"")  # created at the start; the worker died before the end
    assert read_outcome(tmp_path, 2) == {}
    attempt_path(tmp_path, 3).write_bytes(b'{"state": "succ')  # cut short mid-write
    assert read_outcome(tmp_path, 3) == {}
    assert read_outcome(tmp_path, 4) == {}  # never started


def test_runner_passes_params_to_a_script_as_arguments(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("import sys, workbench\nprint('argv', sys.argv[1:])\nworkbench.log(step=0, x=1)\n")
    spec = {"job_id": "job-s", "folder": str(tmp_path), "log_path": str(tmp_path / "job.log"), "kind": "script",
            "target": str(script), "params": {"epochs": 3, "fast": True, "skip": False}, "attempt": 1}
    cwd = os.getcwd()
    assert run_job(spec)["state"] == "succeeded"
    assert os.getcwd() == cwd
    assert "argv ['--epochs', '3', '--fast']" in (tmp_path / "job.log").read_text()
    assert metrics.read_rows(tmp_path)[0]["x"] == 1.0


def test_durations_and_frameworks_are_checked() -> None:
    assert parse_duration("90s", "timeout") == 90
    assert parse_duration("5m", "timeout") == 300
    assert parse_duration(2, "timeout") == 2
    with pytest.raises(InvalidRequest, match="not a duration"):
        parse_duration("soon", "timeout")
    with pytest.raises(InvalidRequest, match="more than 0"):
        parse_duration(0, "timeout")
    assert check_framework("JAX") == "jax" and check_framework("none") is None
    with pytest.raises(InvalidRequest, match="framework 'tensorflow' is not supported; valid: 'jax', 'torch'"):
        check_framework("tensorflow")
