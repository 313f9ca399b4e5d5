"""A database that is busy or away when a job ends: the write is retried, the final state is never
lost, and `wait` returns. SQLite's write lock is really held by another connection for longer than
the workbench's busy timeout and retry budget."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from jobs_helpers import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _wait_for_file(path: str) -> str:
    while not Path(path).exists():
        time.sleep(0.02)
    return "done"


def _db_state(db: Path, job_id: str) -> str:
    with sqlite3.connect(db) as conn:  # a reader: WAL lets it read while another connection writes
        return str(conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


@pytest.fixture
def outage_wb(tmp_path: Path) -> Iterator[Any]:
    from workbench import Workbench

    bench = Workbench(home=tmp_path / "home", user="alice", database_busy_timeout_s=0.1, database_retry_s=0.5)
    yield bench
    bench.close()


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(db, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_job_that_ends_while_the_database_is_locked_keeps_its_final_state(outage_wb: Any, tmp_path: Path) -> None:
    lease = outage_wb.slices.request("cpu")
    go = tmp_path / "go"
    job = outage_wb.jobs.submit(_wait_for_file, slice=lease, params={"path": str(go)})
    db = Path(outage_wb.settings.home) / "workbench.db"
    wait_until(lambda: _db_state(db, job.id) == "running", what="the job to run")
    holder = _hold_write_lock(db)  # longer than the busy timeout (0.1 s) and the retries (0.5 s)
    try:
        go.touch()
        started = time.monotonic()
        finished = outage_wb.jobs.wait(job.id, timeout=60)
        assert finished.state == "succeeded" and time.monotonic() - started < 30
        assert outage_wb.jobs.get(job.id).state == "succeeded"  # what this process knows
        assert _db_state(db, job.id) == "running"  # what the database could not take yet
        assert "the database is unavailable" in Path(finished.log_path).read_text()
    finally:
        holder.execute("COMMIT")
        holder.close()
    wait_until(lambda: _db_state(db, job.id) == "succeeded", timeout_s=20, what="the final state to be written")
    events = [e["state"] for e in outage_wb.jobs.events(job.id)]
    assert events[-1] == "succeeded" and events.count("succeeded") == 1
    lease.release()


def test_a_write_that_is_busy_for_a_while_is_retried_until_it_goes_through(tmp_path: Path) -> None:
    from workbench.errors import StoreUnavailable
    from workbench.store import Store

    db = tmp_path / "retry.db"
    store = Store(f"sqlite:///{db}", write_retry_s=10.0, busy_timeout_s=0.05)
    holder = _hold_write_lock(db)
    tries: list[float] = []

    def write() -> str:
        tries.append(time.monotonic())
        if len(tries) == 3:
            holder.execute("COMMIT")  # the other writer is done after two refusals
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        return "written"

    assert store.write(write, what="test write") == "written" and len(tries) >= 3
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable, match=r"test write: database .* failed for 0.3 s: database is locked"):
        store.write(write, what="test write", retry_s=0.3)
    holder.execute("COMMIT")
    missing: list[float] = []

    def read_missing() -> None:
        missing.append(time.monotonic())
        with store.engine.begin() as conn:
            conn.exec_driver_sql("SELECT * FROM missing")

    with pytest.raises(Exception, match="no such table"):  # not transient: raised at once
        store.write(read_missing, what="read")
    assert len(missing) == 1
    store.close()
