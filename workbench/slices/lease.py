"""Lease records: what a caller holds (part of a device, for an owner, until it expires).

`LeaseRecord` is the plain, immutable record every implementation of the `SliceService`
interface returns (the in-process service today, one over HTTP next): it round-trips through
JSON (`as_json` / `from_json`). `Lease` is the same record bound to the service that read it, so a
notebook can `lease.renew()`, `lease.release()` or use it as a context manager.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Self

from workbench.records import ServiceRecord, html_card, html_table
from workbench.units import as_utc
from workbench.slices.keepalive import renew_due_at
from workbench.slices.types import (
    ENDED_STATES,
    LIVE_STATES,
    WAITING_STATES,
    LeaseColumns,
    LeaseState,
    SliceKind,
    lease_state,
    slice_kind,
)

if TYPE_CHECKING:
    from workbench.slices.interface import SliceService

__all__ = ["ENDED_STATES", "LIVE_STATES", "WAITING_STATES", "Lease", "LeaseList", "LeaseRecord"]

_TIMES = ("created_at", "expires_at", "granted_at", "ended_at", "idle_at", "renew_at")


@dataclass(frozen=True)
class LeaseRecord:
    """A slice lease, as read. `env` is what the slice's processes must get before importing a framework."""

    id: str
    owner: str
    project: str
    kind: SliceKind
    state: LeaseState
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

    @classmethod
    def columns_of(cls, row: LeaseColumns, now: dt.datetime | None = None) -> dict[str, Any]:
        """The record's fields from a lease's columns. Given `now`, a live lease past its
        `expires_at` reads `expired`, as it is, though the sweep that ends it in the database (and
        frees its capacity) has not run yet."""
        state = lease_state(row.state)
        expires_at = as_utc(row.expires_at)
        reason, ended_at = row.reason, as_utc(row.ended_at)
        if now is not None and state in LIVE_STATES and expires_at is not None and expires_at <= now:
            state = "expired"
            reason = f"not renewed within its TTL (expired at {expires_at:%H:%M:%S} UTC)"
            ended_at = expires_at
        return dict(
            id=row.id, owner=row.owner, project=row.project, kind=slice_kind(row.kind), state=state, node=row.node,
            device_keys=list(row.device_keys or []), profile=row.profile, mig_start=row.mig_start,
            gpu_milli=row.gpu_milli, cpu_milli=row.cpu_milli, memory_bytes=row.memory_bytes,
            priority=row.priority, env={str(k): str(v) for k, v in (row.env or {}).items()}, reason=reason,
            queue_position=row.queue_position, created_at=as_utc(row.created_at), expires_at=expires_at,
            spec=str((row.request or {}).get("spec", "")), ttl_s=row.ttl_s, granted_at=as_utc(row.granted_at),
            ended_at=ended_at, idle_at=as_utc(row.idle_at),
            renew_at=renew_due_at(as_utc(row.expires_at), row.ttl_s) if row.state in LIVE_STATES else None,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record `as_json` wrote (times as ISO 8601 strings); unknown keys are ignored."""
        names = {f.name for f in fields(cls) if not f.name.startswith("_")}
        values = {k: v for k, v in data.items() if k in names}
        for key in _TIMES:
            if isinstance(values.get(key), str):
                values[key] = as_utc(dt.datetime.fromisoformat(values[key]))
        values["state"] = lease_state(values["state"])
        values["kind"] = slice_kind(values["kind"])
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        """The public fields, times as ISO 8601 strings (what `--json` and the REST API print)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        for key in _TIMES:
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data

    def record(self) -> LeaseRecord:
        """The plain record (what crosses a service interface), without any link to a service."""
        return LeaseRecord(**{f.name: getattr(self, f.name) for f in fields(LeaseRecord)})

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


@dataclass(frozen=True, repr=False)
class Lease(LeaseRecord, ServiceRecord):
    """A lease record bound to the service that read it: `renew()`, `release()`, `refresh()` and
    `with lease:` act through it and update this object in place (a notebook keeps one handle)."""

    _service: SliceService | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: LeaseColumns, service: SliceService | None = None, now: dt.datetime | None = None) -> Lease:
        """The row as a record bound to `service`; see `LeaseRecord.columns_of` for `now`."""
        return cls(**cls.columns_of(row, now), _service=service)

    def _update(self, other: LeaseRecord) -> Self:
        # The one place a record changes: a notebook's handle follows what the service answered.
        for f in fields(LeaseRecord):
            object.__setattr__(self, f.name, getattr(other, f.name))
        return self

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


class LeaseList(list[Lease]):
    """A list of leases that shows as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = []
        for lease in self:
            note = lease.reason if lease.state != "active" and lease.reason else (
                lease.expires_at.strftime("%H:%M:%S") if lease.expires_at else "")
            rows.append((lease.id, lease.owner, lease.state, lease.describe() if lease.state != "queued" else lease.spec,
                         str(lease.priority), note or ""))
        return html_table("workbench-leases", ("id", "owner", "state", "slice", "priority", "expires / reason"), rows, "no leases")


