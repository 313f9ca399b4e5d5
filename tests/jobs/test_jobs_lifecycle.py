"""Jobs on a real embedded Dask cluster: states, logs, metrics, artifacts, cancel, timeout, retries, kill -9."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from jobs_helpers import EXAMPLES, wait_until

import workbench

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the slice worker cannot import test modules


def _train(n: int = 20) -> int:
    import os

    for i in range(n):
        workbench.log(step=i, loss=1.0 / (i + 1))
    (workbench.artifacts_dir() / "model.txt").write_text("weights")
    print("trained", n, "steps; threads", os.environ.get("OMP_NUM_THREADS"))
    print("a warning on stderr", file=sys.stderr)
    return n * 2


def _fail() -> None:
    print("starting")
    raise RuntimeError("the job's own bug")


def _loop_logging(stop_after_s: float = 120.0) -> None:
    t0 = time.time()
    i = 0
    while time.time() - t0 < stop_after_s:
        workbench.log(step=i, loss=1.0)
        i += 1
        time.sleep(0.01)


def _loop_silent() -> None:
    x = 0
    while True:  # never calls workbench.log: stopped by an asynchronous JobCancelled
        x += sum(range(100))


def _blocked() -> None:
    time.sleep(600)  # stuck in C: only ending the worker stops it


def _flaky(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("first attempt")
        raise OSError("transient failure")
    return "second attempt worked"


def _die_first_time(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(600)  # the test kills this worker with SIGKILL
    return "ran again"


def _states(job: Any) -> list[str]:
    return [e["state"] for e in job.events()]


def test_a_callable_runs_on_the_slice_worker_with_logs_metrics_artifacts(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_train, slice=lease, params={"n": 20}, name="train")
    assert job.state in ("allocating", "running", "succeeded")
    job.wait(60)
    assert job.state == "succeeded", job.error
    assert job.result() == 40
    assert _states(job) == ["queued", "allocating", "running", "succeeded"]
    assert job.started_at and job.ended_at and job.created_at <= job.started_at <= job.ended_at
    assert job.lease_id == lease.id and job.worker_pid and job.worker_pid != os.getpid()
    log = job.logs()
    assert "trained 20 steps" in log and "a warning on stderr" in log
    assert f"threads {lease.env['OMP_NUM_THREADS']}" in log  # the slice's environment reached the process
    ds = job.metrics()
    assert ds.sizes["step"] == 20 and float(ds["loss"].sel(step=3)) == 0.25
    assert (Path(job.folder) / "metrics.nc").exists()
    assert [p.name for p in job.artifacts()] == ["model.txt"]
    assert "succeeded" in repr(job) and job.id in job._repr_html_()
    assert jobs_wb.jobs.logs(job.id) == log
    assert job.id in [j.id for j in jobs_wb.jobs.list(state="succeeded")]
    assert lease.refresh().live  # a lease the user holds stays theirs


def _print_utf8() -> None:
    print("é" * 50 + " end")


def test_read_log_reads_by_offset_in_whole_characters_and_says_when_it_has_ended(jobs_wb: Any, lease: Any) -> None:
    from workbench.errors import InvalidRequest
    from workbench.jobs.logs import LogChunk

    job = jobs_wb.jobs.submit(_print_utf8, slice=lease).wait(60)
    text, offset, chunks = "", 0, []
    while True:
        chunk = jobs_wb.jobs.read_log(job.id, offset, 7)  # 7 bytes: "é" is 2, so most reads end mid-character
        chunks.append(chunk)
        text += chunk.text
        if chunk.ended:
            break
        assert chunk.next_offset > offset
        offset = chunk.next_offset
    assert text == job.logs() and "é" * 50 + " end" in text and "\ufffd" not in text
    assert all(c.state == "succeeded" for c in chunks) and not any(c.ended for c in chunks[:-1])
    assert LogChunk.from_json(chunks[0].as_json()) == chunks[0]
    past = jobs_wb.jobs.read_log(job.id, 10**9)
    assert past.text == "" and past.next_offset == 10**9
    with pytest.raises(InvalidRequest, match="offset >= 0"):
        jobs_wb.jobs.read_log(job.id, -1)
    assert "".join(jobs_wb.jobs.follow_logs(job.id)) == text


def test_a_failing_job_is_failed_with_its_traceback_and_its_own_slice_released(jobs_wb: Any) -> None:
    job = jobs_wb.jobs.submit(_fail, slice="cpu").wait(60)
    assert job.state == "failed"
    assert job.reason == "RuntimeError: the job's own bug"
    assert "Traceback" in job.error and "the job's own bug" in job.error
    assert "Traceback" in job.logs() and "starting" in job.logs()
    assert job.lease_id is not None
    wait_until(lambda: jobs_wb.slices.get(job.lease_id).state == "released", 10, "the job's slice to be released")


def _noop() -> None:
    return None


def test_wait_answers_from_the_drivers_own_writes_and_they_match_the_database(jobs_wb: Any, lease: Any) -> None:
    """`wait()` builds an ended job from what the driver wrote (no read back): it must be the stored job."""
    for fn in (_noop, _fail):
        job = jobs_wb.jobs.submit(fn, slice=lease)
        waited = jobs_wb.jobs.wait(job.id, 60)
        assert waited.done and waited.state == ("succeeded" if fn is _noop else "failed")
        assert waited == jobs_wb.jobs.get(job.id)
    running = jobs_wb.jobs.submit(_loop_logging, slice=lease)
    wait_until(lambda: jobs_wb.jobs.get(running.id).state == "running", 30, "the job to run")
    cancelled = jobs_wb.jobs.cancel(running.id)
    assert cancelled.state == "cancelled" and cancelled == jobs_wb.jobs.get(running.id)


def test_a_job_that_never_ran_says_why_in_its_log(tmp_path: Path) -> None:
    from workbench import Workbench

    # A slice this fleet offers (so the job is accepted) that the user's quota can never allow.
    bench = Workbench(home=tmp_path / "home", user="alice", quotas={"user:*": {"cpus": 0.5}})
    try:
        job = bench.jobs.submit(_noop, slice="cpu:1")
        job.wait(60)
        assert job.state == "failed" and job.started_at is None
        assert f"job {job.id} failed before it ran: could not start" in job.logs()
    finally:
        bench.close()


@pytest.mark.parametrize("script, framework", [("jax_mlp_digits.py", "jax"), ("torch_cnn_digits.py", "torch")])
def test_the_examples_really_train(jobs_wb: Any, lease: Any, script: str, framework: str) -> None:
    job = jobs_wb.jobs.submit(EXAMPLES / script, slice=lease, framework=framework).wait(120)
    assert job.state == "succeeded", job.logs()
    ds = job.metrics()
    accuracy = float(ds["test_accuracy"].dropna("step").values[-1])
    assert accuracy > 0.9
    assert f"test accuracy {accuracy:.3f}" in job.logs()
    assert ds["loss"].dropna("step").values[-10:].mean() < ds["loss"].dropna("step").values[:10].mean()
    assert len(job.artifacts()) == 1


def test_a_notebook_runs_with_papermill_parameters(jobs_wb: Any, lease: Any, tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("steps = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import workbench\nfor i in range(steps):\n    workbench.log(step=i, loss=1.0 / (i + 1))\nprint('notebook ran', steps)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    job = jobs_wb.jobs.submit(path, slice=lease, params={"steps": 7}).wait(120)
    assert job.state == "succeeded", job.logs()
    assert job.kind == "notebook"
    assert "notebook ran 7" in job.logs()
    assert "IPKernelApp" not in job.logs() and "without encryption" not in job.logs()  # the kernel's noise stays out
    assert (Path(job.folder) / "output.ipynb").exists()
    assert job.metrics().sizes["step"] == 7  # the kernel process found its job through WORKBENCH_JOB_*


def test_cancel_stops_a_logging_loop_cooperatively(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_loop_logging, slice=lease)
    wait_until(lambda: job.refresh().state == "running" and job.metrics().sizes["step"] > 0, 60, "live metrics")
    t0 = time.monotonic()
    job.cancel()
    assert job.state == "cancelled"
    assert job.reason == "cancelled by alice"
    assert time.monotonic() - t0 < jobs_wb.jobs.cancel_grace_s + 2
    assert "cancelled" in job.logs()
    assert _states(job)[-1] == "cancelled"


def test_cancel_stops_a_loop_that_never_logs(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_loop_silent, slice=lease)
    wait_until(lambda: job.refresh().state == "running", 60, "running")
    assert job.cancel().state == "cancelled"
    assert "worker was ended" not in (job.reason or "")


def test_cancel_ends_the_worker_of_a_job_that_ignores_it_and_the_slice_goes_on(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_blocked, slice=lease)
    wait_until(lambda: job.refresh().state == "running", 60, "running")
    pid = job.worker_pid
    job.cancel()
    assert job.state == "cancelled"
    assert "its worker was ended" in job.reason
    wait_until(lambda: not _alive(pid), 10, "the old worker process to end")
    again = jobs_wb.jobs.submit(_train, slice=lease, params={"n": 2}).wait(60)
    assert again.state == "succeeded" and again.worker_pid != pid


def test_timeout_fails_the_attempt(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_loop_logging, slice=lease, timeout=1).wait(60)
    assert job.state == "failed"
    assert job.reason == "timed out after 1 s"


def test_retries_with_backoff(jobs_wb: Any, lease: Any, tmp_path: Path) -> None:
    job = jobs_wb.jobs.submit(_flaky, slice=lease, retries=2, retry_backoff_s=0.2, params={"marker": str(tmp_path / "m")})
    job.wait(60)
    assert job.state == "succeeded" and job.attempt == 2
    assert job.result() == "second attempt worked"
    events = job.events()
    retry = [e for e in events if e["state"] == "queued" and "retry" in (e["reason"] or "")]
    assert retry and "retry 1/2 in 0.2 s after: OSError: transient failure" == retry[0]["reason"]
    assert [e["state"] for e in events] == ["queued", "allocating", "running", "queued", "allocating", "running", "succeeded"]


def test_kill_9_of_the_worker_fails_the_job_with_worker_died(jobs_wb: Any, lease: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    job = jobs_wb.jobs.submit(_die_first_time, slice=lease, params={"marker": str(marker)})
    wait_until(lambda: marker.exists() and marker.read_text() and job.refresh().state == "running", 60, "the job to run")
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)
    job.wait(30)
    assert job.state == "failed" and job.reason == "worker died"
    assert "signal SIGKILL" in job.error or "worker died" in job.error
    assert _states(job)[-2:] == ["running", "failed"]
    assert lease.refresh().live  # the user's slice is kept; its next job gets a fresh worker
    again = jobs_wb.jobs.submit(_die_first_time, slice=lease, params={"marker": str(marker)}).wait(60)
    assert again.state == "succeeded" and again.worker_pid != pid


def test_kill_9_with_retries_runs_the_job_again(jobs_wb: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    job = jobs_wb.jobs.submit(_die_first_time, slice="cpu", retries=1, retry_backoff_s=0.1, params={"marker": str(marker)})
    wait_until(lambda: marker.exists() and marker.read_text(), 60, "the job to start")
    os.kill(int(marker.read_text()), signal.SIGKILL)
    job.wait(60)
    assert job.state == "succeeded" and job.attempt == 2
    assert any(e["reason"] == "retry 1/1 in 0.1 s after: worker died" for e in job.events())
    wait_until(lambda: jobs_wb.slices.get(job.lease_id).state == "released", 10, "the job's slice to be released")


def test_cancel_from_another_process_reaches_the_driver(jobs_wb: Any, lease: Any) -> None:
    from workbench import Workbench

    job = jobs_wb.jobs.submit(_loop_logging, slice=lease)
    wait_until(lambda: job.refresh().state == "running", 60, "running")
    other = Workbench(home=jobs_wb.home, user="alice")  # another service on the same database
    try:
        cancelled = other.jobs.cancel(job.id, timeout=20)
    finally:
        other.close()
    assert cancelled.state == "cancelled" and cancelled.reason == "cancelled by alice"


def test_wait_with_a_timeout_raises(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_loop_logging, slice=lease, params={"stop_after_s": 30})
    with pytest.raises(TimeoutError, match="still"):
        job.wait(0.2)
    job.cancel()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _torch_steps(n: int = 3) -> None:
    import torch

    x = torch.randn(32, 32)
    for i in range(n):
        x = torch.tanh(x @ x)
        workbench.log(step=i, loss=float(x.mean()))


def test_profile_true_captures_and_registers_a_trace(jobs_wb: Any, lease: Any) -> None:
    job = jobs_wb.jobs.submit(_torch_steps, slice=lease, framework="torch", profile=True).wait(120)
    assert job.state == "succeeded", job.error
    assert job.profile_id, job.reason
    profile = job.trace()
    assert profile.job_id == job.id and profile.framework == "torch"
    assert Path(profile.path).is_relative_to(Path(job.folder) / "profile")
    # The profiler's own lines (kineto's profiler_start/stop) go beside the trace, not into the job's log.
    assert "profiler_start" not in job.logs() and "USDT" not in job.logs(), job.logs()
    assert "profiler_start" in (Path(job.folder) / "profile" / "profiler.log").read_text()


def test_a_job_whose_slice_is_released_under_it_stops_and_its_worker_ends(jobs_wb: Any) -> None:
    own = jobs_wb.slices.request("cpu")
    job = jobs_wb.jobs.submit(_loop_logging, slice=own)
    wait_until(lambda: job.refresh().state == "running", 60, "running")
    pid = job.worker_pid
    own.release()
    job.wait(30)
    assert job.state == "failed"
    assert job.reason.startswith(f"its slice {own.id} was released")
    wait_until(lambda: not _alive(pid), 15, "the released slice's worker to end")
