"""Leases: who holds which part of which device, until when. Owned by `workbench.slices`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class LeaseRow(Base):
    __tablename__ = "leases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    project: Mapped[str] = mapped_column(String(200), default="default")
    kind: Mapped[str] = mapped_column(String(16))  # mig | fraction | whole | cpu
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued | active | idle | released | expired | preempted | reclaimed
    node: Mapped[str | None] = mapped_column(String(200), index=True)
    device_keys: Mapped[list[Any]] = mapped_column(default=list)  # ["node/0", ...]
    profile: Mapped[str | None] = mapped_column(String(40))  # MIG profile name
    mig_start: Mapped[int | None]
    gpu_milli: Mapped[int] = mapped_column(default=0)  # per device: 1000 whole, <1000 fraction
    cpu_milli: Mapped[int] = mapped_column(default=0)
    memory_bytes: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=0)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the request as the user made it
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)  # environment the slice's processes get
    reason: Mapped[str | None] = mapped_column(String(2000))  # why queued / preempted / reclaimed
    ttl_s: Mapped[float] = mapped_column(default=300.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    granted_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    ended_at: Mapped[dt.datetime | None]
    # Added by migration 0002_slices: the queue, idle detection and who acted.
    queue_position: Mapped[int | None]
    last_active_at: Mapped[dt.datetime | None]  # last time the device showed use
    idle_at: Mapped[dt.datetime | None]  # when the lease was marked idle and its owner told
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)  # last usage sample (evidence)

    @property
    def host_memory_mib(self) -> int:
        """Host memory a GPU slice asked for beside its GPU (kept in `usage`, no column of its own)."""
        return int((self.usage or {}).get("_host_memory_mib", 0))


class LeaseEventRow(Base):
    """Every decision about a lease, with its evidence (idle reclaim, preemption, expiry)."""

    __tablename__ = "lease_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
