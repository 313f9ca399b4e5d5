"""`Lease`: what a caller holds — part of a device, for an owner, until it expires."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workbench.records import ServiceRecord, html_card, html_table
from workbench.units import as_utc
from workbench.slices.keepalive import renew_due_at

if TYPE_CHECKING:
    from workbench.slices.service import SliceService
    from workbench.store.models.slices import LeaseRow

LIVE_STATES = ("active", "idle")
WAITING_STATES = ("queued",)
ENDED_STATES = ("released", "expired", "preempted", "reclaimed")


@dataclass
class Lease(ServiceRecord):
    """A slice lease. `env` is what the slice's processes must get before importing a framework."""

    id: str
    owner: str
    project: str
    kind: str  # mig | fraction | whole | cpu
    state: str  # queued | active | idle | released | expired | preempted | reclaimed
    node: str | None
    device_keys: list[str]
    profile: str | None
    mig_start: int | None
    gpu_milli: int
    cpu_milli: int
    memory_bytes: int
    priority: int
    env: dict[str, str]
    reason: str | None
    queue_position: int | None
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    spec: str = ""
    ttl_s: float = 0.0
    granted_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    idle_at: dt.datetime | None = None
    renew_at: dt.datetime | None = None  # when a face that shows it renews it (workbench.slices.keepalive)
    _service: SliceService | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: LeaseRow, service: SliceService | None = None, now: dt.datetime | None = None) -> Lease:
        """The row as a record. Given `now`, a live lease past its `expires_at` reads `expired`, as it
        is, though the sweep that ends it in the database (and frees its capacity) has not run yet."""
        lease = cls(
            id=row.id, owner=row.owner, project=row.project, kind=row.kind, state=row.state, node=row.node,
            device_keys=list(row.device_keys or []), profile=row.profile, mig_start=row.mig_start,
            gpu_milli=row.gpu_milli, cpu_milli=row.cpu_milli, memory_bytes=row.memory_bytes,
            priority=row.priority, env={str(k): str(v) for k, v in (row.env or {}).items()}, reason=row.reason,
            queue_position=row.queue_position, created_at=as_utc(row.created_at), expires_at=as_utc(row.expires_at),
            spec=str((row.request or {}).get("spec", "")), ttl_s=row.ttl_s, granted_at=as_utc(row.granted_at),
            ended_at=as_utc(row.ended_at), idle_at=as_utc(row.idle_at),
            renew_at=renew_due_at(as_utc(row.expires_at), row.ttl_s) if row.state in LIVE_STATES else None,
            _service=service,
        )
        if now is not None and lease.state in LIVE_STATES and lease.expires_at is not None and lease.expires_at <= now:
            lease.state = "expired"
            lease.reason = f"not renewed within its TTL (expired at {lease.expires_at:%H:%M:%S} UTC)"
            lease.ended_at = lease.expires_at
        return lease

    # -- state --------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Holding capacity now (active or idle)."""
        return self.state in LIVE_STATES

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def gpus(self) -> float:
        """GPU capacity held, in whole-GPU units (a 3g of 7 compute slices counts 3/7)."""
        return self.gpu_milli * max(len(self.device_keys), 1) / 1000 if self.kind != "cpu" else 0.0

    @property
    def cpu_cores(self) -> float:
        return self.cpu_milli / 1000




    def renew(self) -> Lease:
        """Heartbeat: push the expiry one TTL ahead."""
        return self._update(self._svc().renew(self.id))

    def release(self) -> Lease:
        """Give the capacity back (idempotent)."""
        return self._update(self._svc().release(self.id))

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- display ------------------------------------------------------------------------------
    def describe(self) -> str:
        """What is held, in words: `1g.10gb @ h100-0/3 (start 2)`, `0.25 GPU of h100-0/1`, `2 CPU cores`."""
        where = ", ".join(self.device_keys) or "–"
        if self.kind == "mig":
            return f"{self.profile} @ {where}" + (f" (start {self.mig_start})" if self.mig_start is not None else "")
        if self.kind == "fraction":
            return f"{self.gpu_milli / 1000:g} GPU of {where}"
        if self.kind == "whole":
            return f"{len(self.device_keys) or '?'} whole GPU(s): {where}"
        return f"{self.cpu_milli / 1000:g} CPU core(s) on {self.node or '–'}"

    def __repr__(self) -> str:
        extra = ""
        if self.state == "queued":
            extra = f" position={self.queue_position}"
        if self.reason and self.state != "active":
            extra += f" reason={self.reason!r}"
        held = self.spec if self.state == "queued" else self.describe()
        return f"<Lease {self.id} {self.state} {held} owner={self.owner}{extra}>"

    def _repr_html_(self) -> str:
        colors = {"active": "#2e7d32", "idle": "#ef6c00", "queued": "#1565c0"}
        color = colors.get(self.state, "#616161")
        rows: list[tuple[str, str]] = [
            ("slice", self.describe() if self.state != "queued" else f"{self.spec} (waiting)"),
            ("owner / project", f"{self.owner} / {self.project}"),
            ("priority", str(self.priority)),
        ]
        if self.state == "queued":
            rows.append(("queue position", str(self.queue_position)))
        if self.reason:
            rows.append(("reason", self.reason))
        if self.expires_at and self.live:
            rows.append(("expires", self.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") + " unless renewed"))
        if self.env:
            rows.append(("environment", " ".join(f"{k}={v}" for k, v in sorted(self.env.items()))))
        return html_card("workbench-lease", f"Lease {self.id}", self.state, color, rows)


class LeaseList(list):  # type: ignore[type-arg]
    """A list of leases that shows as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = []
        for lease in self:
            note = lease.reason if lease.state != "active" and lease.reason else (
                lease.expires_at.strftime("%H:%M:%S") if lease.expires_at else "")
            rows.append((lease.id, lease.owner, lease.state, lease.describe() if lease.state != "queued" else lease.spec,
                         str(lease.priority), note or ""))
        return html_table("workbench-leases", ("id", "owner", "state", "slice", "priority", "expires / reason"), rows, "no leases")


