"""`wb.jobs`: submit, watch, cancel and inspect jobs.

The process that submits a job drives it (its *driver*): it gets the job a slice, makes sure the
slice has its worker process (`backend.DaskBackend`), submits the attempt to Dask with the
slice's resource, and records every transition in the database, with its reason:

    queued -> allocating -> running -> succeeded | failed | cancelled | preempted
                 ^------------ retry (backoff) ----------'

One monitor thread per driver owns those transitions; it hears from Dask (a `running` event
from the worker, the attempt's future finishing) and from the clock (timeouts, retry backoff,
cancel escalation, the slice worker's process dying, a cancel request left in the database by
another process). Writes are conditional on the state they leave (`UPDATE ... WHERE state IN`),
so two processes (this driver, and another reconciling a dead driver's jobs) never both win.

A job whose driver is gone (the notebook kernel died, `wb.close()`) cannot be running: its
slice workers ended with it. Any workbench that reads such a job records the truth: the
outcome the worker wrote to the job's folder if the attempt finished, else `failed` with the
reason `lost: ...`.
"""

from __future__ import annotations

import atexit
import builtins
import concurrent.futures
import contextlib
import datetime as dt
import os
import queue
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from sqlalchemy import insert, select, update

from workbench.errors import (
    Conflict,
    DataFolderReadOnly,
    Forbidden,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
    WorkbenchError,
)
from workbench.jobs.job import (
    ACTIVE_STATES,
    STATES,
    TERMINAL_STATES,
    Job,
    JobList,
)
from workbench.jobs.logs import LOG_CHUNK_BYTES, LogChunk, read_file
from workbench.jobs.targets import check_framework, check_target
from workbench.store.models.base import new_id, utcnow
from workbench.store.models.jobs import JobEventRow, JobRow
from workbench.units import as_utc, check_name, check_priority, check_retries, jsonable, parse_duration_s

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workbench.config import Settings
    from workbench.energy.service import EnergyService
    from workbench.jobs.backend import DaskBackend
    from workbench.profiles.protocol import ProfileService
    from workbench.slices.interface import SliceService
    from workbench.store import Store

_TICK_S = 0.2
_CANCEL_GRACE_S = 3.0
_DB_POLL_S = 0.5
_LEASE_CHECK_S = 2.0
_SCHEDULER_LOST_AFTER_S = 3.0
_LEASE_RECHECK_S = 1.0


def _driver_id() -> str:
    import psutil

    return f"{socket.gethostname()}|{os.getpid()}|{psutil.Process().create_time():.2f}"


def _driver_alive(driver: str | None) -> bool | None:
    """Whether the process that drives a job is alive; None when that cannot be told from here."""
    if not driver:
        return None
    try:
        host, pid_text, created = driver.split("|")
        pid, created_at = int(pid_text), float(created)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    import psutil

    try:
        return bool(abs(psutil.Process(pid).create_time() - created_at) < 1.0)  # psutil ships no annotations
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


@dataclass
class _Run:
    """A job this process drives."""

    job_id: str
    name: str
    owner: str
    project: str
    spec: dict[str, Any]
    slice_spec: str | None
    lease: Any
    owns_lease: bool
    priority: int
    retries: int
    backoff_s: float
    timeout_s: float | None
    profile: bool
    framework: str | None
    attempt: int = 0
    future: Any = None
    worker_address: str | None = None
    worker_pid: int | None = None
    running_since: float | None = None
    start_at: float = 0.0  # monotonic time before which the next attempt must not start
    waiting_start: bool = False
    deferred: bool = False
    launching: bool = False
    cancel_reason: str | None = None
    cancel_state: str = "cancelled"
    cancel_deadline: float | None = None
    killed: bool = False
    finished: bool = False
    concluded_attempt: int = 0
    running_pending: bool = False  # the running event arrived; its row update waits for the next tick
    running_written: bool = False
    started_at: dt.datetime | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # The job's row as this driver wrote it (the monitor applies each of its writes here too), and
    # the final one once the job ended without clean-up: `wait()` answers from it, no re-read.
    row: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None


class JobHost(Protocol):
    """What the job service uses of the workbench it serves: its settings and user, the store, and
    the sibling services. `workbench.api.Workbench` provides it; typed here so that the core never
    imports the facade. Members are read lazily (a service is created on first use)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def user(self) -> str: ...

    def is_admin(self, user: str | None = None) -> bool: ...

    @property
    def store(self) -> Store: ...

    @property
    def slices(self) -> SliceService: ...

    @property
    def energy(self) -> EnergyService: ...

    @property
    def profiles(self) -> ProfileService: ...


class JobService:
    """Jobs of one `Workbench`: `wb.jobs.submit(...)`, `get`, `list`, `cancel`, `logs`."""

    def __init__(self, wb: JobHost) -> None:
        self.wb = wb
        self.settings = wb.settings
        self.driver = _driver_id()
        self._runs: dict[str, _Run] = {}
        # Final states the database refused (it stayed away past the retries): job id -> (events, fields, row).
        self._unrecorded: dict[str, tuple[list[tuple[str, str | None]], dict[str, Any], dict[str, Any]]] = {}
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._backend: DaskBackend | None = None
        self._monitor: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._disconnected_since: float | None = None
        self._next_db_poll = 0.0
        self._next_lease_check = 0.0
        self._lease_renewed: dict[str, float] = {}
        # Leases checked (owner, live) in the last _LEASE_RECHECK_S: a burst of jobs on one slice reads it once.
        self._leases_checked: dict[str, tuple[float, Any]] = {}
        self.cancel_grace_s = _CANCEL_GRACE_S
        self._atexit = weakref.WeakMethod(self.close)
        atexit.register(_close_at_exit, self._atexit)

    # -- the backend and the monitor ----------------------------------------------------------
    @property
    def backend(self) -> DaskBackend:
        with self._lock:
            if self._closed:
                raise WorkbenchError("this Workbench's job service is closed; create a new Workbench to run jobs")
            if self._backend is None:
                from workbench.jobs.backend import DaskBackend

                self._backend = DaskBackend(
                    self.settings.dask_scheduler, self.settings.home / "workers", self._on_worker_event,
                )
            return self._backend

    @property
    def client(self) -> Any:
        """The `distributed.Client` jobs are submitted with (starts the embedded cluster if needed)."""
        return self.backend.client

    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="workbench-jobs")
                self._monitor = threading.Thread(target=self._loop, name="workbench-jobs-monitor", daemon=True)
                self._monitor.start()

    # -- submit -------------------------------------------------------------------------------
    def submit(
        self,
        fn_or_path: Callable[..., Any] | str | os.PathLike[str],
        slice: Any = None,
        framework: str | None = None,
        name: str | None = None,
        priority: int = 0,
        retries: int = 0,
        timeout: float | str | dt.timedelta | None = None,
        profile: bool = False,
        params: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
        project: str | None = None,
        args: list[str] | None = None,
        retry_backoff_s: float = 1.0,
        deferrable: bool = False,
        deadline: float | str | dt.timedelta | None = None,
        expected_duration: float | str | dt.timedelta | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Job:
        """Run a callable, a script (`.py`) or a notebook (`.ipynb`, with papermill) on a slice.

        `slice` is a `Lease` you hold (its worker stays warm between jobs), a lease id, or a slice
        spec such as `"cpu"`, `"1g.10gb"` or `0.25` that the job requests for itself and gives
        back when it ends (default `"cpu"`). `params` are the callable's keyword arguments, the
        script's `--key value` arguments, or the notebook's papermill parameters. `retries`
        failed attempts are tried again after `retry_backoff_s * 2**(n-1)` seconds; `timeout`
        (seconds or `"5m"`) fails an attempt that runs longer. `profile=True` captures a trace
        and registers it as a Profile. Returns at once with the job `queued`.
        """
        if self._closed:
            raise WorkbenchError("this Workbench's job service is closed; create a new Workbench to run jobs")
        framework = check_framework(framework)
        kind, target, fn = check_target(fn_or_path)
        params = dict(params or {})
        if kind != "callable":
            _check_json(params)
        owner = owner or self.wb.user
        if owner != self.wb.user and not self.wb.is_admin():
            raise Forbidden(f"{self.wb.user} cannot submit jobs for {owner}; only admins ({', '.join(self.settings.admin_users) or 'none'}) can")
        project = check_name(project or self.settings.project, "project")
        check_name(owner, "owner")
        if name is not None:
            check_name(name, "name")
        check_priority(priority)
        check_retries(retries)
        timeout_s = None if timeout is None else parse_duration_s(timeout, "timeout")
        lease, slice_spec = self._resolve_slice(slice, owner)
        job_id = new_id("job")
        folder = self.settings.jobs_dir / job_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataFolderReadOnly(f"cannot create the job's folder: the data folder {self.settings.jobs_dir} is not "
                                     f"writable ({exc.strerror}; writing needs write permission on the folder)") from None
        log_path = folder / "job.log"  # created by the worker (or by `_finish` if it never ran)
        name = name or _default_name(kind, target)
        not_before, deadline_at, defer_reason = self._plan_start(deferrable, deadline, expected_duration, lease)
        spec = {
            "job_id": job_id, "name": name, "kind": kind, "target": target, "fn": _pickle_callable(fn), "params": params,
            "args": list(args or []), "framework": framework, "folder": str(folder), "log_path": str(log_path),
            "profile": bool(profile), "cwd": str(cwd or os.getcwd()),
        }
        events = [("queued", defer_reason or f"submitted by {self.wb.user}")]
        state = "queued"
        if lease is not None and not_before is None:
            state = "allocating"
            events.append(("allocating", f"on slice {lease.id}"))
        values = dict(
            id=job_id, name=name, owner=owner, project=project, kind=kind, target=target, framework=framework,
            lease_id=lease.id if lease is not None else None, slice_spec=slice_spec, state=state, priority=priority,
            retries=retries, attempt=0, timeout_s=timeout_s, profile=bool(profile), params=jsonable(params, "params"),
            folder=str(folder), log_path=str(log_path), reason=events[-1][1], driver=self.driver,
            owns_lease=lease is None, deferrable=bool(deferrable), deadline_at=deadline_at,
            not_before=not_before, created_at=utcnow(), attempt_count=None,
        )
        values.pop("attempt_count")
        with self.wb.store._wrap_errors(), self.wb.store.engine.begin() as conn:
            conn.execute(_INSERT_JOB, values)
            conn.execute(_INSERT_EVENT, [{"job_id": job_id, "state": st, "reason": why, "at": values["created_at"]} for st, why in events])
        run = _Run(
            job_id=job_id, name=name, owner=owner, project=project, spec=spec, slice_spec=slice_spec, lease=lease,
            owns_lease=lease is None, priority=priority, retries=retries, backoff_s=retry_backoff_s,
            timeout_s=timeout_s, profile=bool(profile), framework=framework, row={**_EMPTY_ROW, **values},
        )
        if not_before is not None:
            run.start_at = time.monotonic() + max(0.0, (not_before - utcnow()).total_seconds())
            run.deferred = True
        with self._lock:
            self._runs[job_id] = run
        self._ensure_monitor()
        backend = self._backend
        warm = backend.worker(lease.id) if lease is not None and backend is not None and backend.started else None
        if warm is not None and warm.alive and not run.deferred:
            # A warm slice worker: submit to Dask from here, without a trip through the monitor.
            run.attempt = 1
            self._submit_attempt(run, 1)
        else:
            self._queue.put(("start", job_id))
        return Job.from_row(SimpleNamespace(**run.row), self)

    def _resolve_slice(self, slice: Any, owner: str) -> tuple[Any, str | None]:
        """(a live lease the owner holds, None) or (None, a spec the job will request)."""
        if slice is None:
            return None, "cpu"
        lease_id = getattr(slice, "id", None)
        if lease_id is None and isinstance(slice, str) and slice.startswith("lease-"):
            lease_id = slice
        if lease_id is None:
            self.wb.slices.check(slice)  # a bad spec, or one this fleet can never grant, is an error now
            return None, str(slice)
        cached = self._leases_checked.get(lease_id)
        if cached is not None and time.monotonic() - cached[0] < _LEASE_RECHECK_S and cached[1].owner == owner:
            return cached[1], getattr(cached[1], "spec", None) or None
        try:
            lease = self.wb.slices.get(lease_id)
        except NotFound:
            raise NotFound(f"slice {lease_id} does not exist; see wb.slices.list() for yours") from None
        if lease.owner != owner and not self.wb.is_admin():
            raise Forbidden(f"slice {lease.id} is owned by {lease.owner}, not {owner}; request your own with wb.slices.request(...)")
        if not lease.live:
            raise Conflict(f"slice {lease.id} is {lease.state}, not active; request a new one with wb.slices.request(...)")
        self._leases_checked[lease.id] = (time.monotonic(), lease)
        return lease, getattr(lease, "spec", None) or None

    def _plan_start(self, deferrable: bool, deadline: Any, expected_duration: Any, lease: Any) -> tuple[dt.datetime | None, dt.datetime | None, str | None]:
        """A deferrable job waits for the low-carbon hour the energy service picks before its deadline."""
        if not deferrable:
            return None, None, None
        deadline_s = parse_duration_s(deadline if deadline is not None else "8h", "deadline")
        duration_s = parse_duration_s(expected_duration if expected_duration is not None else "1h", "expected_duration")
        assert deadline_s is not None and duration_s is not None
        now = utcnow()
        deadline_at = now + dt.timedelta(seconds=deadline_s)
        try:
            start = self.wb.energy.plan_start(duration_s, deadline_at, now)
        except (ImportError, AttributeError) as exc:
            return None, deadline_at, f"deferrable, but no energy planner is available ({exc}): starting now"
        if isinstance(start, dt.datetime):
            start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
            if start > now + dt.timedelta(seconds=1):
                return start, deadline_at, (f"deferred until {start:%Y-%m-%d %H:%M} UTC (lower carbon intensity), "
                                            f"deadline {deadline_at:%Y-%m-%d %H:%M} UTC")
        return None, deadline_at, "deferrable: the best start is now"

    # -- read ---------------------------------------------------------------------------------
    def _row(self, s: Session, job_id: str) -> JobRow:
        row = s.get(JobRow, job_id)
        if row is None:
            raise NotFound(f"job {job_id} does not exist; see `workbench jobs list` or wb.jobs.list()")
        return row

    def get(self, job_id: str) -> Job:
        """The job with this id (raises NotFound)."""
        pending = self._unrecorded.get(job_id)
        if pending is not None:  # ended while the database was away; written when it is back
            return Job.from_row(SimpleNamespace(**pending[2]), self)
        row = self._fetch(job_id)
        if row.state in ACTIVE_STATES and row.id not in self._runs and row.driver != self.driver:
            self._reconcile([job_id])
            row = self._fetch(job_id)
        return Job.from_row(row, self)

    def _fetch(self, job_id: str) -> Any:
        """The job's row (a Core row: read on every `wait` and `get`, so without the ORM's overhead)."""
        with self.wb.store._wrap_errors(), self.wb.store.engine.connect() as conn:
            row = conn.execute(select(JobRow.__table__).where(JobRow.__table__.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"job {job_id} does not exist; see `workbench jobs list` or wb.jobs.list()")
        return row

    def list(self, owner: str | None = None, all_users: bool = False, state: str | list[str] | None = None,
             limit: int | None = None) -> JobList:
        """Jobs, newest first: yours by default, `owner=` someone's, `all_users=True` everyone's."""
        states = [state] if isinstance(state, str) else list(state or [])
        for st in states:
            if st not in STATES:
                raise InvalidRequest(f"job state {st!r} is not valid; valid: {', '.join(STATES)}")
        self._reconcile_stale()
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id)
        if not all_users:
            query = query.where(JobRow.owner == (owner or self.wb.user))
        if states:
            query = query.where(JobRow.state.in_(states))
        if limit:
            query = query.limit(limit)
        with self.wb.store.session() as s:
            rows = s.scalars(query).all()
        return JobList(Job.from_row(r, self) for r in rows)

    def events(self, job_id: str) -> builtins.list[dict[str, Any]]:
        with self.wb.store.session() as s:
            self._row(s, job_id)
            rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)).all()
            return [{"at": as_utc(r.at).isoformat(), "state": r.state, "reason": r.reason} for r in rows]

    @overload
    def logs(self, job_id: str, follow: Literal[False] = False) -> str: ...

    @overload
    def logs(self, job_id: str, follow: Literal[True]) -> Iterator[str]: ...

    @overload
    def logs(self, job_id: str, follow: bool) -> str | Iterator[str]: ...

    def logs(self, job_id: str, follow: bool = False) -> str | Iterator[str]:
        """The whole log so far (str); with `follow=True` an iterator of new text until the job ends."""
        if follow:
            return self.follow_logs(job_id)
        job = self.get(job_id)
        if not job.log_path:
            return ""
        try:
            return Path(job.log_path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def read_log(self, job_id: str, offset: int = 0, limit: int = LOG_CHUNK_BYTES) -> LogChunk:
        """The job's log from byte `offset` (at most `limit` bytes), the offset to ask for next, and
        whether the job has ended and this is the end of its log (then there is no need to ask again)."""
        if offset < 0 or limit < 1:
            raise InvalidRequest(f"a log read needs offset >= 0 and limit >= 1, not offset={offset}, limit={limit}")
        job = self.get(job_id)
        text, next_offset, size = read_file(job.log_path, offset, limit)
        return LogChunk(job_id=job_id, state=job.state, offset=offset, next_offset=next_offset, text=text,
                        ended=job.done and next_offset >= size)

    def follow_logs(self, job_id: str, poll_s: float = 0.2) -> Iterator[str]:
        """The log's new text as it is written, until the job has ended and its log is read to the end."""
        offset = 0
        while True:
            chunk = self.read_log(job_id, offset)
            if chunk.text:
                yield chunk.text
            if chunk.ended:
                return
            if chunk.next_offset == offset:
                time.sleep(poll_s)
            offset = chunk.next_offset

    def result(self, job_id: str) -> Any:
        job = self.get(job_id)
        if job.state != "succeeded":
            raise Conflict(f"job {job_id} is {job.state}; only a succeeded job has a result" + (f" ({job.reason})" if job.reason else ""))
        path = Path(job.folder or "") / "result.pkl"
        if not path.exists():
            return None
        import cloudpickle

        return cloudpickle.loads(path.read_bytes())

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        run = self._runs.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        if run is not None:
            if not run.done.wait(timeout):
                job = self.get(job_id)
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout:g} s")
            if run.final is not None:
                return Job.from_row(SimpleNamespace(**run.final), self)
            return self.get(job_id)
        pause = 0.05
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    # -- cancel -------------------------------------------------------------------------------
    def cancel(self, job_id: str, *, wait: bool = True, timeout: float = 30.0) -> Job:
        """Stop a job: cooperatively first, then by ending its worker after a grace period.

        Idempotent for jobs that already ended. A job driven by another live process is stopped
        by that process (it polls for the request).
        """
        job = self.get(job_id)
        if job.owner != self.wb.user and not self.wb.is_admin():
            raise Forbidden(f"job {job_id} belongs to {job.owner}; {self.wb.user} cannot cancel it")
        if job.done:
            return job
        reason = f"cancelled by {self.wb.user}"
        if job_id in self._runs:
            self._queue.put(("cancel", job_id, reason, "cancelled"))
        else:
            with self.wb.store.session() as s:
                row = self._row(s, job_id)
                driver = row.driver
                row.cancel_request = reason
            if _driver_alive(driver) is False:
                self._reconcile([job_id])
        return self.wait(job_id, timeout=timeout) if wait else self.get(job_id)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop this process's jobs (recorded `cancelled`), the slice workers and the embedded cluster."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runs = [r for r in self._runs.values() if not r.finished]
        for run in runs:
            self._queue.put(("cancel", run.job_id, "the workbench that drove it was closed", "cancelled"))
        if self._monitor is not None:
            for run in runs:
                run.done.wait(self.cancel_grace_s + 5)
            self._queue.put(("stop",))
            self._monitor.join(10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
        if self._unrecorded:  # a last, patient try; else another process records them from the attempt files
            self._write_unrecorded(retry_s=self.wb.store.write_retry_s)
        if self._backend is not None:
            self._backend.close()

    # -- the monitor thread -------------------------------------------------------------------
    def _on_worker_event(self, message: dict[str, Any]) -> None:
        self._queue.put(("event", message))

    def _loop(self) -> None:
        while True:
            try:
                message = self._queue.get(timeout=_TICK_S)
            except queue.Empty:
                message = None
            try:
                if message is not None:
                    if message[0] == "stop":
                        return
                    self._handle(message)
                self._tick()
            except StoreUnavailable as exc:  # the database is away: the next tick tries again
                print(f"workbench: {exc}", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - the monitor must survive one bad message
                import traceback

                traceback.print_exc()
                _ = exc

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "start":
            self._start_attempt(message[1])
        elif kind == "launched":
            self._on_launched(*message[1:])
        elif kind == "launch_failed":
            self._on_launch_failed(*message[1:])
        elif kind == "event":
            self._on_running(message[1])
        elif kind == "done":
            self._on_done(*message[1:])
        elif kind == "cancel":
            self._on_cancel(*message[1:])
        elif kind == "finished":
            self._runs.pop(message[1], None)

    def _start_attempt(self, job_id: str) -> None:
        run = self._runs.get(job_id)
        if run is None or run.finished or run.launching or run.future is not None:
            return
        if time.monotonic() < run.start_at:
            run.waiting_start = True
            return
        run.waiting_start = False
        run.attempt += 1
        run.launching = True
        assert self._pool is not None
        self._pool.submit(self._launch, run, run.attempt)

    def _launch(self, run: _Run, attempt: int) -> None:
        """In a pool thread: get the slice, make sure its worker runs, submit the attempt to Dask."""
        try:
            if run.lease is None or not _lease_live(run.lease):
                self._transition(run.job_id, "allocating", f"requesting slice {run.slice_spec}", allowed=("queued",), attempt=attempt)
                if run.slice_spec is None:  # a lease without a spec (none in practice): nothing to request again
                    raise InvalidRequest(f"job {run.job_id}'s slice has ended and has no spec to request a new one with")
                # The job points at its queued lease while it waits, so that its place in the queue shows.
                lease = self.wb.slices.request(
                    run.slice_spec, owner=run.owner, project=run.project, priority=run.priority, wait=True,
                    on_queued=lambda queued: self._update(run.job_id, lease_id=queued.id, owns_lease=True),
                )
                run.lease, run.owns_lease = lease, True
                self._update(run.job_id, lease_id=lease.id, owns_lease=True)
                if run.finished or run.cancel_reason:
                    self._queue.put(("launch_failed", run.job_id, attempt, None))
                    return
            elif attempt > 1 or run.deferred:
                self._transition(run.job_id, "allocating", f"attempt {attempt} on slice {run.lease.id}", allowed=("queued",), attempt=attempt)
            self.backend.ensure_worker(run.lease)
            future = self._submit_attempt(run, attempt, announce=False)
            self._queue.put(("launched", run.job_id, attempt, future))
        except Exception as exc:  # noqa: BLE001 - reported as the job's failure
            self._queue.put(("launch_failed", run.job_id, attempt, exc))

    def _submit_attempt(self, run: _Run, attempt: int, announce: bool = True) -> Any:
        from workbench.jobs.runner import run_job

        spec = dict(run.spec, attempt=attempt)
        future = self.backend.submit(run_job, spec, lease_id=run.lease.id, key=f"{run.job_id}-{attempt}", priority=run.priority)
        if announce:
            run.future = future
        future.add_done_callback(self._done_callback(run.job_id, attempt))
        return future

    def _done_callback(self, job_id: str, attempt: int) -> Callable[[Any], None]:
        """Runs in Dask's callback thread: fetch the outcome there, then hand it to the monitor."""

        def callback(future: Any) -> None:
            status, payload = future.status, None
            try:
                if status == "finished":
                    payload = future.result(timeout=10)
                elif status == "error":
                    payload = future.exception(timeout=10)
            except Exception as exc:  # noqa: BLE001
                status, payload = "error", exc
            self._queue.put(("done", job_id, attempt, status, payload))

        return callback

    def _on_launched(self, job_id: str, attempt: int, future: Any) -> None:
        run = self._runs.get(job_id)
        if run is None:
            future.cancel()
            return
        run.launching = False
        if run.finished or attempt != run.attempt:
            future.cancel()
            return
        run.future = future
        if run.cancel_reason and run.cancel_deadline is None:
            self._on_cancel(job_id, run.cancel_reason, run.cancel_state)

    def _on_launch_failed(self, job_id: str, attempt: int, exc: BaseException | None) -> None:
        run = self._runs.get(job_id)
        if run is None:
            return
        run.launching = False
        if exc is None:  # cancelled while the slice was being allocated
            self._finish(run, run.cancel_state, run.cancel_reason or "cancelled", None)
            return
        reason = f"could not start: {exc}" if isinstance(exc, WorkbenchError) else f"could not start: {type(exc).__name__}: {exc}"
        self._finish(run, "failed", reason, reason)

    def _on_running(self, message: dict[str, Any]) -> None:
        run = self._runs.get(str(message.get("job_id")))
        if run is None or run.finished or message.get("event") != "running" or message.get("attempt") != run.attempt:
            return
        run.running_since = time.monotonic()
        run.worker_pid = message.get("pid")
        run.worker_address = message.get("worker") or run.worker_address
        run.started_at = _parse_time(message.get("at")) or utcnow()
        run.running_pending, run.running_written = True, False

    def _write_running(self, run: _Run) -> None:
        """Record `running` (deferred a moment, so a job that ends at once costs one write, not two)."""
        run.running_pending = False
        run.running_written = True
        self._transition(run.job_id, "running", f"attempt {run.attempt} on slice {run.lease.id if run.lease else '?'}",
                         allowed=("allocating", "queued"), started_at=run.started_at, worker_pid=run.worker_pid,
                         worker=run.worker_address, scheduler=self._scheduler_label(), attempt=run.attempt)

    def _scheduler_label(self) -> str | None:
        backend = self._backend
        if backend is None or not backend.started:
            return None
        return backend.address if backend.external else f"embedded {backend.address}"

    def _on_done(self, job_id: str, attempt: int, status: str, payload: Any) -> None:
        run = self._runs.get(job_id)
        if run is None or run.finished or attempt != run.attempt or attempt <= run.concluded_attempt:
            return
        run.future = None
        outcome: dict[str, Any] | None = None
        if status == "finished":
            outcome = payload if isinstance(payload, dict) else {"state": "failed", "reason": f"unexpected outcome {payload!r}"}
        elif status == "error":
            exc = payload
            name = type(exc).__name__
            if name == "KilledWorker" or run.killed:
                outcome = {"state": "failed", "reason": "worker died", "error": f"worker died: {exc}"}
            else:
                outcome = {"state": "failed", "reason": f"{name}: {exc}", "error": f"{name}: {exc}"}
        else:  # cancelled: by us, or the scheduler went away
            if run.cancel_reason:
                outcome = {"state": run.cancel_state, "reason": run.cancel_reason}
            else:
                where = self._backend.address if self._backend and self._backend.started else "?"
                reason = f"lost: the Dask scheduler {where} went away while the job ran"
                outcome = {"state": "failed", "reason": reason, "error": reason, "lost": True}
        self._conclude(run, outcome)

    def _conclude(self, run: _Run, outcome: dict[str, Any]) -> None:
        """An attempt ended: finish the job, or queue the next attempt after the backoff."""
        run.concluded_attempt = run.attempt
        state = outcome.get("state", "failed")
        reason = outcome.get("reason")
        if run.cancel_reason and state != "succeeded":
            state, reason = run.cancel_state, run.cancel_reason
            if run.killed:
                reason += f" (its worker was ended after {self.cancel_grace_s:g} s)"
        if state == "failed" and run.attempt <= run.retries and not run.cancel_reason and not outcome.get("lost") and not self._closed:
            if not run.running_written:  # an attempt that failed at once never sent its running event
                run.started_at = run.started_at or _parse_time(outcome.get("started_at"))
                run.worker_pid = run.worker_pid or outcome.get("pid")
                run.worker_address = run.worker_address or outcome.get("worker")
                if run.started_at is not None:
                    self._write_running(run)
            delay = run.backoff_s * 2 ** (run.attempt - 1)
            self._transition(run.job_id, "queued", f"retry {run.attempt}/{run.retries} in {delay:g} s after: {reason}",
                             allowed=("allocating", "running"), error=outcome.get("error"))
            run.running_since = None
            run.running_pending = run.running_written = False
            run.start_at = time.monotonic() + delay
            run.waiting_start = True
            return
        self._finish(run, state, reason, outcome.get("error"), outcome)

    def _finish(self, run: _Run, state: str, reason: str | None, error: str | None, outcome: dict[str, Any] | None = None) -> None:
        outcome = outcome or {}
        run.finished = True
        fields: dict[str, Any] = {"error": error, "ended_at": _parse_time(outcome.get("ended_at")) or utcnow(),
                                  "cancel_request": None, "attempt": run.attempt}
        started = run.started_at or _parse_time(outcome.get("started_at"))
        events: list[tuple[str, str | None]] = []
        if started is not None and not run.running_written:
            run.running_pending, run.running_written = False, True
            events.append(("running", f"attempt {run.attempt} on slice {run.lease.id if run.lease else '?'}"))
            fields.update(started_at=started, worker_pid=run.worker_pid or outcome.get("pid"),
                          worker=run.worker_address or outcome.get("worker"), scheduler=self._scheduler_label())
        reading = outcome.get("energy")
        if reading is not None and hasattr(reading, "energy_j"):
            try:
                fields.update(self.wb.energy.job_fields(reading))
            except Exception:  # noqa: BLE001 - no carbon signal: keep the measured energy
                fields.update(energy_j=reading.energy_j, avg_power_w=reading.avg_power_w, energy_estimated=reading.estimated)
        events.append((state, reason))
        try:
            written = self._transition(run.job_id, events, None, allowed=ACTIVE_STATES, **fields)
        except StoreUnavailable as exc:
            written = self._defer_final(run, events, fields, exc)
        if started is None:
            _note_in_log(run.spec.get("log_path"), f"[workbench] job {run.job_id} {state} before it ran: {reason}")
        if self._needs_cleanup(run, outcome):
            assert self._pool is not None
            self._pool.submit(self._after_finish, run, state, outcome)
        else:
            run.final = dict(run.row) if written else None
            run.done.set()
            self._runs.pop(run.job_id, None)

    def _defer_final(self, run: _Run, events: builtins.list[tuple[str, str | None]], fields: dict[str, Any], exc: StoreUnavailable) -> bool:
        """The database stayed away past the retries: keep the final state to write when it is back.

        Waiters (`wait`, `jobs run --wait`) get the real outcome now; `get` answers with it until it
        is written. Were this process to end first, another one records it from the attempt file
        (`_reconcile`), as for any job whose driver is gone.
        """
        state, reason = events[-1]
        run.row.update(state=state, reason=reason, **fields)
        self._unrecorded[run.job_id] = (events, fields, dict(run.row))
        _note_in_log(run.spec.get("log_path"), f"[workbench] job {run.job_id} {state}; the database is unavailable "
                     f"({exc}), so the state is recorded when it is back")
        return True

    def _write_unrecorded(self, retry_s: float = 0.0) -> None:
        """Write the final states the database refused earlier (by default one quick try each, from the monitor)."""
        for job_id, (events, fields, _row) in list(self._unrecorded.items()):
            try:
                self._transition(job_id, events, None, allowed=ACTIVE_STATES, retry_s=retry_s, **fields)
            except StoreUnavailable:
                return
            self._unrecorded.pop(job_id, None)

    def _needs_cleanup(self, run: _Run, outcome: dict[str, Any]) -> bool:
        if (run.owns_lease and run.lease is not None) or outcome.get("trace_path") or self.settings.mlflow_uri:
            return True
        try:
            return os.stat(Path(run.spec["folder"]) / "metrics.jsonl").st_size > 0
        except OSError:
            return False

    def _after_finish(self, run: _Run, state: str, outcome: dict[str, Any]) -> None:
        """Slow clean-up off the monitor thread: metrics file, slice, profile, MLflow; then wake waiters."""
        try:
            folder = Path(run.spec["folder"])
            if not (folder / "metrics.nc").exists():
                with contextlib.suppress(Exception):
                    from workbench.jobs.metrics import write_netcdf

                    write_netcdf(folder, {"job_id": run.job_id, "name": run.name})
            if run.owns_lease and run.lease is not None:
                with contextlib.suppress(Exception):
                    self.wb.slices.release(run.lease.id)
                if self._backend is not None:
                    self._backend.stop_worker(run.lease.id)
            if outcome.get("trace_path"):
                self._register_profile(run, outcome["trace_path"])
            if self.settings.mlflow_uri:
                with contextlib.suppress(Exception):
                    from workbench.jobs.tracking import log_to_mlflow

                    log_to_mlflow(self.settings.mlflow_uri, self.get(run.job_id))
        finally:
            run.done.set()
            self._queue.put(("finished", run.job_id))

    def _register_profile(self, run: _Run, path: str) -> None:
        device = "cpu"
        if run.lease is not None and getattr(run.lease, "device_keys", None):
            device = run.lease.device_keys[0]
        try:
            profile = self.wb.profiles.register(path, name=run.name, owner=run.owner, job_id=run.job_id, device=device, framework=run.framework)
        except Exception as exc:  # noqa: BLE001 - the job ran; say why its profile is missing
            self._update(run.job_id, reason=f"its profile could not be registered: {exc}")
            return
        self._update(run.job_id, profile_id=getattr(profile, "id", None))

    def _on_cancel(self, job_id: str, reason: str, state: str = "cancelled") -> None:
        run = self._runs.get(job_id)
        if run is None or run.finished:
            return
        if run.cancel_reason is None:
            run.cancel_reason, run.cancel_state = reason, state
        if run.future is None:
            if run.launching:
                return  # `launched` or `launch_failed` comes next and finishes it
            self._finish(run, run.cancel_state, run.cancel_reason, None)
            return
        if run.cancel_deadline is not None:
            return
        run.cancel_deadline = time.monotonic() + self.cancel_grace_s
        if run.running_since is None:
            run.future.cancel()
        address = run.worker_address
        if address is None and run.lease is not None and self._backend is not None:
            address = _worker_address(self._backend, run.lease.id)
        if address:
            with contextlib.suppress(Exception):
                self.backend.request_cancel(address, job_id)

    def _tick(self) -> None:
        now = time.monotonic()
        for run in list(self._runs.values()):
            if run.finished:
                continue
            if run.running_pending and run.running_since is not None and now - run.running_since >= 0.05:
                self._write_running(run)
            if run.waiting_start and now >= run.start_at and not run.cancel_reason:
                self._start_attempt(run.job_id)
            if run.timeout_s and run.running_since and now - run.running_since > run.timeout_s and not run.cancel_reason:
                self._on_cancel(run.job_id, f"timed out after {run.timeout_s:g} s", "failed")
            if run.cancel_deadline is not None and now > run.cancel_deadline and not run.killed and run.lease is not None:
                run.killed = True
                if self._backend is not None:
                    self._backend.kill_worker(run.lease.id, run.worker_address)
            self._check_worker(run)
        self._check_scheduler(now)
        if now >= self._next_db_poll:
            self._next_db_poll = now + _DB_POLL_S
            if self._unrecorded:
                self._write_unrecorded()
            self._poll_cancel_requests()
        if now >= self._next_lease_check:
            self._next_lease_check = now + _LEASE_CHECK_S
            self._check_leases(now)

    def _check_worker(self, run: _Run) -> None:
        """The slice worker's process ended while an attempt was on it: the worker died."""
        if run.future is None or run.lease is None or self._backend is None:
            return
        worker = self._backend.worker(run.lease.id)
        if worker is None or worker.alive:
            return
        code = worker.returncode
        future, run.future = run.future, None
        with contextlib.suppress(Exception):
            future.cancel()
        if run.cancel_reason:
            self._conclude(run, {"state": run.cancel_state, "reason": run.cancel_reason})
            return
        detail = f"worker died (its process ended with {_exit_text(code)})"
        if run.running_since is None and worker.log_tail():
            detail = f"worker died before the job started (exit {_exit_text(code)}): {worker.log_tail(5)}"
        self._conclude(run, {"state": "failed", "reason": "worker died", "error": detail})

    def _check_scheduler(self, now: float) -> None:
        backend = self._backend
        if backend is None or not backend.started or not backend.external:
            return
        if backend.connected():
            self._disconnected_since = None
            return
        if self._disconnected_since is None:
            self._disconnected_since = now
            return
        if now - self._disconnected_since < _SCHEDULER_LOST_AFTER_S:
            return
        for run in list(self._runs.values()):
            if run.finished or (run.future is None and not run.launching):
                continue
            reason = f"lost: the Dask scheduler {self.settings.dask_scheduler} went away while the job ran"
            future, run.future = run.future, None
            if future is not None:
                with contextlib.suppress(Exception):
                    future.cancel()
            if run.lease is not None:
                backend.kill_worker(run.lease.id)
            self._finish(run, "failed", reason, reason, {"lost": True})

    def _poll_cancel_requests(self) -> None:
        ids = [j for j, r in self._runs.items() if not r.finished]
        if not ids:
            return
        with self.wb.store.session() as s:
            found = s.execute(select(JobRow.id, JobRow.cancel_request).where(JobRow.id.in_(ids), JobRow.cancel_request.is_not(None))).all()
        for job_id, reason in found:
            run = self._runs.get(job_id)
            if run is not None and run.cancel_reason is None and reason is not None:  # the query reads only requests
                self._on_cancel(job_id, reason, "cancelled")

    def _check_leases(self, now: float) -> None:
        """Renew the leases of running jobs; end warm workers whose slice has been released."""
        in_use = {r.lease.id: r.lease for r in self._runs.values() if not r.finished and r.lease is not None}
        for run in [r for r in self._runs.values() if not r.finished and r.lease is not None and not r.cancel_reason]:
            try:
                lease = self.wb.slices.get(run.lease.id)
            except Exception:  # noqa: BLE001 - the store is busy; look again at the next check
                continue
            if lease.live:
                continue
            detail = f"its slice {lease.id} was {lease.state}" + (f": {lease.reason}" if lease.reason else "")
            if lease.state in ("preempted", "reclaimed"):
                self._on_cancel(run.job_id, detail, "preempted")
            else:
                self._on_cancel(run.job_id, detail, "failed")
        for lease_id, lease in in_use.items():
            ttl = float(getattr(lease, "ttl_s", 0) or self.settings.lease_ttl_s)
            if now - self._lease_renewed.get(lease_id, now) >= ttl / 3:
                with contextlib.suppress(Exception):
                    self.wb.slices.renew(lease_id)
                self._lease_renewed[lease_id] = now
            self._lease_renewed.setdefault(lease_id, now)
        backend = self._backend
        if backend is None:
            return
        for lease_id in list(backend.workers()):
            if lease_id in in_use:
                continue
            try:
                live = self.wb.slices.get(lease_id).live
            except Exception:  # noqa: BLE001
                live = False
            if not live:
                assert self._pool is not None
                self._pool.submit(backend.stop_worker, lease_id)
                self._lease_renewed.pop(lease_id, None)

    # -- the database -------------------------------------------------------------------------
    def _transition(self, job_id: str, state: str | builtins.list[tuple[str, str | None]], reason: str | None, *, allowed: tuple[str, ...],
                    retry_s: float | None = None, **fields: Any) -> bool:
        """Move the job to `state` if it is in one of `allowed`; record the event(s). False if not.

        A write that fails transiently is retried (`Store.write`); `StoreUnavailable` when it never went through.
        """
        events = state if isinstance(state, list) else [(state, reason)]
        final_state, final_reason = events[-1]

        def write() -> bool:
            # Core statements on one connection: this is on every job's path, the ORM unit of work is not needed.
            with self.wb.store.engine.begin() as conn:
                result = conn.execute(
                    update(JobRow).where(JobRow.id == job_id, JobRow.state.in_(allowed))
                    .values(state=final_state, reason=final_reason, **fields)
                )
                if result.rowcount == 0:
                    return False
                at = utcnow()
                conn.execute(_INSERT_EVENT, [{"job_id": job_id, "state": st, "reason": why, "at": at} for st, why in events])
                return True

        if not self.wb.store.write(write, what=f"job {job_id} -> {final_state}", retry_s=retry_s):
            return False
        self._mirror(job_id, state=final_state, reason=final_reason, **fields)
        return True

    def _update(self, job_id: str, **fields: Any) -> None:
        with self.wb.store.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(**fields))
        self._mirror(job_id, **fields)

    def _mirror(self, job_id: str, **fields: Any) -> None:
        run = self._runs.get(job_id)
        if run is not None:
            run.row.update(fields)

    def _reconcile_stale(self) -> None:
        with self.wb.store.session() as s:
            ids = s.scalars(select(JobRow.id).where(JobRow.state.in_(ACTIVE_STATES), JobRow.driver != self.driver)).all()
        ids = [i for i in ids if i not in self._runs]
        if ids:
            self._reconcile(ids)

    def _reconcile(self, job_ids: builtins.list[str]) -> None:
        """Jobs whose driver has ended: record what really happened to them."""
        from workbench.jobs.runner import read_outcome

        for job_id in job_ids:
            with self.wb.store.session() as s:
                row = s.get(JobRow, job_id)
                if row is None or row.state not in ACTIVE_STATES:
                    continue
                driver, folder, attempt, lease_id, owns = row.driver, row.folder, row.attempt, row.lease_id, row.owns_lease
            if _driver_alive(driver) is not False:
                continue
            outcome = read_outcome(Path(folder or ""), attempt or 1)
            host, pid = (driver or "?|?").split("|")[:2]
            if outcome.get("attempt") == attempt and outcome.get("state") in TERMINAL_STATES:
                state, reason, error = outcome["state"], outcome.get("reason"), outcome.get("error")
                reason = reason or f"{state} (recorded by its worker after the driving process {pid} on {host} ended)"
            else:
                state = "failed"
                reason = f"lost: the workbench process that drove it (pid {pid} on {host}) ended while it was {row.state}"
                error = reason
            self._transition(job_id, state, reason, allowed=ACTIVE_STATES, error=error,
                             ended_at=_parse_time(outcome.get("ended_at")) or utcnow())
            if owns and lease_id:
                with contextlib.suppress(Exception):
                    self.wb.slices.release(lease_id)


# -- helpers ------------------------------------------------------------------------------------
# Statements on every job's path, built once.
# The tables by name: the declarative `__table__` is typed as any FromClause, which `insert` refuses.
_INSERT_JOB = insert(JobRow.metadata.tables[JobRow.__tablename__])
_INSERT_EVENT = insert(JobEventRow.metadata.tables[JobEventRow.__tablename__])
_EMPTY_ROW: dict[str, Any] = {column.key: None for column in JobRow.__table__.columns}


def _note_in_log(log_path: str | None, line: str) -> None:
    """Append a line to a job's log (creating it): the record of a job that never reached a worker."""
    if log_path:
        with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _close_at_exit(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        with contextlib.suppress(Exception):
            method()


def _pickle_callable(fn: Callable[..., Any] | None) -> bytes | None:
    if fn is None:
        return None
    import cloudpickle

    try:
        pickled: bytes = cloudpickle.dumps(fn)  # cloudpickle ships no annotations
        return pickled
    except Exception as exc:  # noqa: BLE001 - say what cannot travel to the worker
        raise InvalidRequest(f"the job's callable {fn!r} cannot be pickled to send to its worker: {exc}") from None


def _default_name(kind: str, target: str) -> str:
    if kind == "callable":
        return target.rsplit(".", 1)[-1]
    return Path(target).stem


def _check_json(params: dict[str, Any]) -> None:
    import orjson

    try:
        orjson.dumps(params)
    except TypeError as exc:
        raise InvalidRequest(f"params of a script or notebook must be JSON values (numbers, strings, lists, dicts): {exc}") from None


def _lease_live(lease: Any) -> bool:
    return bool(getattr(lease, "live", True))


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "an unknown status"
    if code < 0:
        import signal

        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"status {code}"


def _worker_address(backend: DaskBackend, lease_id: str) -> str | None:
    from workbench.jobs.backend import slice_resource

    try:
        info = backend.client.scheduler_info(n_workers=-1)
    except Exception:  # noqa: BLE001
        return None
    name = slice_resource(lease_id)
    for address, worker in info.get("workers", {}).items():
        if name in (worker.get("resources") or {}):
            return str(address)
    return None
