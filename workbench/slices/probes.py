"""Idle probes: is a lease's device in use? And the pass that marks idle leases, with the evidence.

A lease nobody uses is marked idle after `idle_after_s` (its owner is told, in its `reason`), and
may be reclaimed `idle_grace_s` later when others wait (`scheduler`). Whether a slice is used is
measured, never guessed: NVML utilization for GPUs, the CPU time of the slice's processes (found
by `WORKBENCH_SLICE_ID` in their environment) for CPU slices. Where nothing can be measured (a
declared fleet), a lease is never called idle. The probe is a seam: tests pass their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.config import Settings
from workbench.inventory.devices import Inventory
from workbench.units import as_utc
from workbench.slices.lease import LeaseRecord
from workbench.units import jsonable
from workbench.slices.types import LIVE_STATES
from workbench.store.models.slices import LeaseRow

Sample = dict[str, Any]
"""A usage sample: `busy` (whether the device was used), and the evidence (kept in the lease's `usage`)."""
UsageProbe = Callable[[Any, LeaseRecord], "Sample | None"]
"""`probe(service, lease)`: the lease's device use now, or None when there is no way to tell."""
Event = Callable[[Session, str, str, dict[str, Any]], None]


class DeviceSource(Protocol):
    """Where the inventory comes from (`Workbench.devices`); `refresh` reads the devices' use again."""

    def __call__(self, *, refresh: bool = False) -> Inventory: ...


class DeviceUse:
    """The default probe: NVML utilization and memory for GPUs, the slice's processes' CPU time for
    CPU slices. Remembers each CPU slice's last CPU time: busy means it grew since the last sample."""

    def __init__(self, devices: DeviceSource) -> None:
        self._devices = devices
        self._cpu_time_s: dict[str, float] = {}

    def __call__(self, service: object, lease: LeaseRecord) -> Sample | None:
        if lease.kind == "cpu":
            return self.cpu_time(lease)
        inv = self._devices(refresh=True)
        if inv.source != "nvml":
            return None
        samples: list[dict[str, Any]] = []
        for key in lease.device_keys:
            d = inv.device(key)
            samples.append({"device": key, "utilization_pct": d.utilization_pct, "memory_used_bytes": d.memory_used_bytes})
        busy = any((x["utilization_pct"] or 0) > 0 for x in samples)
        return {"busy": busy, "devices": samples}

    def cpu_time(self, lease: LeaseRecord) -> Sample:
        """The CPU time of the processes that run in the slice, and whether it grew since the last call."""
        import psutil  # only when a CPU slice is probed: importing it costs every CLI call otherwise

        total = 0.0
        pids = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.environ().get("WORKBENCH_SLICE_ID") != lease.id:
                    continue
                times = proc.cpu_times()
                total += times.user + times.system
                pids.append(proc.pid)
            except (psutil.Error, OSError):  # gone, or not ours to read: not the slice's
                continue
        before = self._cpu_time_s.get(lease.id)
        self._cpu_time_s[lease.id] = total
        busy = before is not None and total - before > 0.01
        return {"busy": busy, "cpu_time_s": round(total, 3), "pids": pids}


def mark_idle(
    s: Session, now: dt.datetime, settings: Settings, sample: Callable[[LeaseRow], Sample | None], event: Event
) -> int:
    """Sample device use of live leases; mark idle ones (telling their owner) with evidence, and
    idle ones that were used again active. Returns how many were marked idle."""
    idle_after = settings.idle_after_s
    grace = settings.idle_grace_s
    marked = 0
    for row in s.scalars(select(LeaseRow).where(LeaseRow.state.in_(LIVE_STATES))).all():
        found = sample(row)
        if found is None:
            continue  # no way to tell (a declared fleet): never called idle
        usage = dict(row.usage or {})
        usage.update({k: v for k, v in found.items() if k != "busy"}, sampled_at=now.isoformat())
        row.usage = usage
        if found.get("busy"):
            row.last_active_at = now
            if row.state == "idle":
                row.state, row.idle_at, row.reason = "active", None, None
                event(s, row.id, "active", {"evidence": jsonable(found)})
            continue
        since = as_utc(row.last_active_at or row.granted_at) or now
        if row.state == "active" and (now - since).total_seconds() >= idle_after:
            row.state = "idle"
            row.idle_at = now
            row.reason = (
                f"idle: no device use since {since:%Y-%m-%d %H:%M:%S} UTC; it will be reclaimed "
                f"{grace:g} s from now if others are waiting"
            )
            event(s, row.id, "idle", {"since": since, "evidence": jsonable(found)})
            marked += 1
    return marked
