"""Bad input gets clear messages; a dead driver or a vanished scheduler leaves the truth in the database."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from jobs_helpers import wait_until

import workbench
from workbench.errors import Conflict, Forbidden, InvalidRequest, NotFound

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _noop() -> None:
    return None


def _loop() -> None:
    i = 0
    while True:
        workbench.log(step=i, loss=1.0)
        i += 1
        time.sleep(0.02)


def test_bad_input_gets_clear_messages(wb: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="framework 'tf' is not supported; valid: 'jax', 'torch' or None"):
        wb.jobs.submit(_noop, framework="tf")
    with pytest.raises(NotFound, match="script 'nope.py' does not exist"):
        wb.jobs.submit("nope.py")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(InvalidRequest, match="neither a .py script nor a .ipynb notebook"):
        wb.jobs.submit(tmp_path / "data.csv")
    with pytest.raises(InvalidRequest, match="not a duration"):
        wb.jobs.submit(_noop, timeout="a while")
    with pytest.raises(InvalidRequest, match="valid specs"):
        wb.jobs.submit(_noop, slice="2g.banana")
    with pytest.raises(NotFound, match="job job-doesnotexist does not exist"):
        wb.jobs.get("job-doesnotexist")
    with pytest.raises(NotFound, match="does not exist"):
        wb.jobs.cancel("job-doesnotexist")
    with pytest.raises(NotFound, match="does not exist"):
        wb.jobs.logs("job-doesnotexist")
    with pytest.raises(InvalidRequest, match="job state 'done' is not valid"):
        wb.jobs.list(state="done")
    assert wb.jobs._backend is None  # none of this started a cluster


def test_a_slice_the_user_does_not_own_or_that_ended_is_refused(wb: Any) -> None:
    from workbench import Workbench

    bob = Workbench(home=wb.home, user="bob")
    try:
        bobs = bob.slices.request("cpu")
        with pytest.raises(Forbidden, match=f"slice {bobs.id} is owned by bob"):
            wb.jobs.submit(_noop, slice=bobs)
        with pytest.raises(Forbidden, match="is owned by bob"):
            wb.jobs.submit(_noop, slice=bobs.id)
        bobs.release()
        mine = wb.slices.request("cpu")
        mine.release()
        with pytest.raises(Conflict, match=f"slice {mine.id} is released"):
            wb.jobs.submit(_noop, slice=mine)
    finally:
        bob.close()


def test_someone_elses_job_cannot_be_cancelled(wb: Any) -> None:
    from workbench import Workbench

    job = wb.jobs.submit(_loop, slice="cpu")
    bob = Workbench(home=wb.home, user="bob")
    try:
        with pytest.raises(Forbidden, match=f"job {job.id} belongs to"):
            bob.jobs.cancel(job.id)
    finally:
        bob.close()
    assert job.cancel().state == "cancelled"


_DRIVER = textwrap.dedent("""
    import sys, time, cloudpickle, workbench
    from workbench import Workbench

    def forever():
        i = 0
        while True:
            workbench.log(step=i, loss=1.0)
            i += 1
            time.sleep(0.02)

    wb = Workbench(home=sys.argv[1])
    job = wb.jobs.submit(forever, slice="cpu")
    while wb.jobs.get(job.id).state != "running":
        time.sleep(0.05)
    print(job.id, wb.jobs.get(job.id).worker_pid, flush=True)
    time.sleep(600)
""")


def test_a_restarted_workbench_sees_that_a_dead_drivers_job_was_lost(tmp_path: Path) -> None:
    from workbench import Workbench

    home = tmp_path / "home"
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    proc = subprocess.Popen([sys.executable, str(script), str(home)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        job_id, worker_pid = line.split()
    finally:
        proc.send_signal(signal.SIGKILL)  # the notebook kernel dies
        proc.wait()
    # Its slice worker ends with it (it watches its parent), so nothing keeps running unseen.
    wait_until(lambda: not Path(f"/proc/{worker_pid}").exists() or _zombie(int(worker_pid)), 15, "the worker to end")
    with Workbench(home=home) as wb:
        job = wb.jobs.get(job_id)
        assert job.state == "failed"
        assert job.reason.startswith(f"lost: the workbench process that drove it (pid {proc.pid}")
        assert [e["state"] for e in job.events()][-1] == "failed"
        assert wb.slices.get(job.lease_id).state == "released"
        assert wb.jobs.list(state="running") == []


@pytest.fixture
def scheduler(tmp_path: Path) -> Any:
    """A separate `dask scheduler` process, as a team's shared cluster would have."""
    scheduler_file = tmp_path / "scheduler.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import json

    wait_until(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, 30, "the scheduler to start")
    address = json.loads(scheduler_file.read_text())["address"]
    yield proc, address
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_an_external_scheduler_runs_jobs_and_its_loss_is_reported(tmp_path: Path, scheduler: Any) -> None:
    from workbench import Workbench

    proc, address = scheduler
    with Workbench(home=tmp_path / "home", dask_scheduler=address) as wb:
        done = wb.jobs.submit(_noop, slice="cpu").wait(60)
        assert done.state == "succeeded"
        job = wb.jobs.submit(_loop, slice="cpu")
        wait_until(lambda: job.refresh().state == "running", 60, "running")
        assert address in (job.refresh().worker or "") or job.worker
        proc.kill()
        proc.wait()
        job.wait(30)
        assert job.state == "failed"
        assert job.reason.startswith("lost: the Dask scheduler")
        assert address in job.reason


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def test_a_running_job_whose_slice_is_preempted_ends_preempted_and_says_by_whom(tmp_path: Path) -> None:
    import os

    from workbench import Workbench

    cores = os.cpu_count() or 1
    spec = f"cpu:{cores}"  # the whole machine: the next request must preempt it
    with Workbench(home=tmp_path / "home", user="alice", preempt_min_runtime_s=0) as alice, \
            Workbench(home=tmp_path / "home", user="bob", preempt_min_runtime_s=0) as bob:
        job = alice.jobs.submit(_loop, slice=spec, priority=0)
        wait_until(lambda: alice.jobs.get(job.id).state == "running", 60, "the job to run")
        urgent = bob.slices.request(spec, priority=5, wait=False)
        assert urgent.state == "active"
        job.wait(60)
        assert job.state == "preempted"
        assert f"was preempted: preempted by bob's lease {urgent.id}" in (job.reason or "")
        assert [e["state"] for e in job.events()][-1] == "preempted"
        urgent.release()
