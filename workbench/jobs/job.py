"""`Job`: a handle on one job, as the driver sees it (state from the database, files from its folder)."""

from __future__ import annotations

import datetime as dt
import html
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, Literal, get_args

from workbench.records import ServiceRecord, html_card, html_table
from workbench.units import as_utc, format_energy_j

if TYPE_CHECKING:
    from workbench.jobs.logs import LogChunk
    from workbench.jobs.service import JobService
    from workbench.store.models.jobs import JobRow

# The job states, defined once: the strings are those of the database and the wire.
ActiveJobState = Literal["queued", "allocating", "running"]
TerminalJobState = Literal["succeeded", "failed", "cancelled", "preempted"]
JobState = Literal[ActiveJobState, TerminalJobState]
STATES: tuple[str, ...] = get_args(ActiveJobState) + get_args(TerminalJobState)
ACTIVE_STATES: tuple[str, ...] = get_args(ActiveJobState)
TERMINAL_STATES: tuple[str, ...] = get_args(TerminalJobState)
_COLORS = {"queued": "#1565c0", "allocating": "#6a1b9a", "running": "#ef6c00", "succeeded": "#2e7d32",
           "failed": "#c62828", "cancelled": "#616161", "preempted": "#795548"}


@dataclass
class Job(ServiceRecord):
    """A submitted job. Attributes are a snapshot; `refresh()` re-reads them, `wait()` waits for the end."""

    id: str
    name: str
    owner: str
    project: str
    kind: str  # callable | script | notebook
    target: str
    framework: str | None
    state: str
    reason: str | None
    error: str | None
    lease_id: str | None
    slice_spec: str | None
    priority: int
    retries: int
    attempt: int
    timeout_s: float | None
    profile: bool
    params: dict[str, Any]
    folder: str | None
    log_path: str | None
    worker: str | None
    worker_pid: int | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    energy_j: float | None = None
    avg_power_w: float | None = None
    energy_estimated: bool | None = None
    not_before: dt.datetime | None = None
    profile_id: str | None = None
    _service: JobService | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: JobRow | SimpleNamespace, service: JobService | None = None) -> Job:
        """From the job's ORM row, or a namespace of its columns (a Core row's, or the row the driver
        keeps in memory: `wait()` answers from it without reading the database again)."""
        return cls(
            id=row.id, name=row.name, owner=row.owner, project=row.project, kind=row.kind, target=row.target,
            framework=row.framework, state=row.state, reason=row.reason, error=row.error, lease_id=row.lease_id,
            slice_spec=row.slice_spec, priority=row.priority, retries=row.retries, attempt=row.attempt,
            timeout_s=row.timeout_s, profile=row.profile, params=dict(row.params or {}), folder=row.folder,
            log_path=row.log_path, worker=row.worker, worker_pid=row.worker_pid,
            created_at=as_utc(row.created_at), started_at=as_utc(row.started_at), ended_at=as_utc(row.ended_at),
            energy_j=row.energy_j, avg_power_w=row.avg_power_w, energy_estimated=row.energy_estimated,
            not_before=as_utc(row.not_before), profile_id=row.profile_id, _service=service,
        )

    def _svc(self) -> JobService:
        service: JobService = super()._svc()  # typed here: `ServiceRecord` serves every record kind
        return service

    # -- state --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()

    @property
    def queued_s(self) -> float | None:
        """Seconds from submission until the job ran (waiting for a slice, a deferred start), or
        until now while it waits; apart from `duration_s`, the time it ran."""
        if self.created_at is None:
            return None
        end = self.started_at or (self.ended_at if self.done else None) or dt.datetime.now(dt.UTC)
        return max(0.0, (end - self.created_at).total_seconds())

    def slice_queue(self) -> tuple[int | None, str | None]:
        """Where the job waits for its slice: the queued lease's place in the slices queue (1 is
        next) and why it is not granted yet; `(None, None)` when it does not wait for a slice."""
        if self.state not in ("queued", "allocating") or not self.lease_id:
            return None, None
        lease = self._svc().wb.slices.get(self.lease_id)
        if lease.state != "queued":
            return None, None
        return lease.queue_position, lease.reason

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job has ended (succeeded, failed, cancelled, preempted); returns it.

        Raises `TimeoutError` if it is still going after `timeout` seconds.
        """
        return self._update(self._svc().wait(self.id, timeout=timeout))

    def cancel(self, *, wait: bool = True) -> Job:
        """Stop the job: cooperatively first (at its next `workbench.log`), then by ending its worker."""
        return self._update(self._svc().cancel(self.id, wait=wait))

    def events(self) -> list[dict[str, Any]]:
        """Every state transition with its time and reason."""
        return self._svc().events(self.id)

    # -- outputs ------------------------------------------------------------------------------
    def logs(self, follow: bool = False, *, file: IO[str] | None = None) -> str | None:
        """The job's log (stdout and stderr) so far; `follow=True` prints it as it grows until the job ends."""
        if not follow:
            return self._svc().logs(self.id)
        out = file or sys.stdout
        for chunk in self._svc().follow_logs(self.id):
            out.write(chunk)
            out.flush()
        self.refresh()
        return None

    def read_log(self, offset: int = 0, limit: int | None = None) -> LogChunk:
        """The log from byte `offset`, the offset to read next and whether the job has ended (`wb.jobs.read_log`)."""
        if limit is None:
            return self._svc().read_log(self.id, offset)
        return self._svc().read_log(self.id, offset, limit)

    def metrics(self) -> Any:
        """What the job logged with `workbench.log`, as an xarray Dataset (dimension `step`); live while it runs."""
        from workbench.jobs import metrics

        if not self.folder:
            return metrics.to_dataset([])
        return metrics.load(Path(self.folder), final=self.done,
                            attrs={"job_id": self.id, "name": self.name, "framework": self.framework, "state": self.state})

    def artifacts(self) -> list[Path]:
        """Files the job wrote under `workbench.artifacts_dir()`."""
        if not self.folder:
            return []
        root = Path(self.folder) / "artifacts"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def result(self) -> Any:
        """The return value of a callable job that succeeded."""
        return self._svc().result(self.id)

    def trace(self) -> Any:
        """The Profile captured with `profile=True` (see `workbench.profiles`), or None."""
        if not self.profile_id:
            return None
        return self._svc().wb.profiles.get(self.profile_id)

    def watch(self, every_s: float = 0.5, metric: str | None = None) -> Job:
        """Show the job's state and latest metrics in the notebook, updated until it ends."""
        handle: Any = None  # IPython's DisplayHandle, when IPython is here
        try:
            from IPython.display import HTML, display
        except ImportError:
            pass
        else:
            handle = display(HTML(self._repr_html_()), display_id=True)  # type: ignore[no-untyped-call]  # IPython ships no annotations
        while True:
            self.refresh()
            if handle is not None:
                handle.update(HTML(self._repr_html_(metric=metric)))  # type: ignore[no-untyped-call]  # IPython ships no annotations
            else:
                print(self._progress_line(metric))
            if self.done:
                return self
            time.sleep(every_s)

    # -- display ------------------------------------------------------------------------------
    def _latest_metrics(self) -> dict[str, float]:
        from workbench.jobs import metrics

        if not self.folder:
            return {}
        rows = metrics.read_rows(Path(self.folder))
        latest: dict[str, float] = {}
        for row in rows:
            latest.update({k: v for k, v in row.items() if v is not None})
        return latest

    def _progress_line(self, metric: str | None = None) -> str:
        latest = self._latest_metrics()
        keys = [metric] if metric else [k for k in latest if k not in ("time_s", "host_memory_bytes", "device_memory_bytes")]
        shown = " ".join(f"{k}={latest[k]:.4g}" for k in keys if k in latest)
        return f"{self.id} {self.state} {shown}".strip()

    def __repr__(self) -> str:
        extra = f" reason={self.reason!r}" if self.reason and self.state != "succeeded" else ""
        took = f" {self.duration_s:.1f}s" if self.duration_s is not None else ""
        return (f"<Job {self.id} {self.name!r} {self.state}{took} {self.kind}"
                f" framework={self.framework} slice={self.lease_id or self.slice_spec}{extra}>")

    def _repr_html_(self, metric: str | None = None) -> str:
        color = _COLORS.get(self.state, "#616161")
        rows: list[tuple[str, str]] = [
            ("what", f"{self.kind} {self.target}"),
            ("framework", self.framework or "–"),
            ("slice", self.lease_id or self.slice_spec or "–"),
            ("owner / project", f"{self.owner} / {self.project}"),
            ("attempt", f"{self.attempt} of {self.retries + 1}"),
            ("created", _fmt(self.created_at)),
            ("started", _fmt(self.started_at)),
            ("ended", _fmt(self.ended_at)),
        ]
        if self.duration_s is not None:
            rows.append(("duration", f"{self.duration_s:.1f} s"))
        if self.reason:
            rows.append(("reason", self.reason))
        latest = self._latest_metrics()
        if latest:
            keys = [metric] if metric else [k for k in latest if k not in ("host_memory_bytes", "time_s")]
            rows.append(("latest metrics", ", ".join(f"{k}={latest[k]:.4g}" for k in keys if k in latest)))
        if self.energy_j is not None:
            rows.append(("energy", format_energy_j(self.energy_j, estimated=bool(self.energy_estimated))))
        rows.append(("log", self.log_path or "–"))
        error = ""
        if self.error:
            error = f"<details><summary>error</summary><pre>{html.escape(self.error[-4000:])}</pre></details>"
        return html_card("workbench-job", f"Job {self.id}", self.state, color, rows, error, subtitle=self.name)


class JobList(list):  # type: ignore[type-arg]
    """A list of jobs that shows as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = [
            (job.id, job.name, job.owner, job.state, job.framework or "–", job.lease_id or job.slice_spec or "–",
             _fmt(job.created_at), job.reason or "")
            for job in self
        ]
        return html_table("workbench-jobs", ("id", "name", "owner", "state", "framework", "slice", "created", "reason"),
                          rows, "no jobs")

def _fmt(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"
