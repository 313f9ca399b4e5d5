"""Jobs and their state history. Owned by `workbench.jobs`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    project: Mapped[str] = mapped_column(String(200), default="default")
    kind: Mapped[str] = mapped_column(String(16))  # callable | script | notebook
    target: Mapped[str] = mapped_column(String(2000))  # path, or qualified name of the callable
    framework: Mapped[str | None] = mapped_column(String(16))  # jax | torch | None
    lease_id: Mapped[str | None] = mapped_column(String(40), index=True)
    slice_spec: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued | allocating | running | succeeded | failed | cancelled | preempted
    priority: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    attempt: Mapped[int] = mapped_column(default=0)
    timeout_s: Mapped[float | None]
    profile: Mapped[bool] = mapped_column(default=False)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str | None] = mapped_column(String(2000))
    log_path: Mapped[str | None] = mapped_column(String(2000))
    worker: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    # Energy and carbon (filled by the energy issue's measurements).
    energy_j: Mapped[float | None]
    avg_power_w: Mapped[float | None]
    energy_estimated: Mapped[bool | None]
    carbon_g: Mapped[float | None]
    deferrable: Mapped[bool] = mapped_column(default=False)
    deadline_at: Mapped[dt.datetime | None]
    not_before: Mapped[dt.datetime | None]
    # Who drives the job and where (migration 0003_jobs): the reason of the last transition, the
    # process that submitted it ("host|pid|start time") and its Dask scheduler, the pid of the
    # worker process running it, whether the job requested (and so releases) its own lease, and
    # a cancel request left by another process for the driving one.
    reason: Mapped[str | None] = mapped_column(Text)
    driver: Mapped[str | None] = mapped_column(String(400))
    scheduler: Mapped[str | None] = mapped_column(String(400))
    worker_pid: Mapped[int | None]
    owns_lease: Mapped[bool] = mapped_column(default=False)
    cancel_request: Mapped[str | None] = mapped_column(String(2000))
    profile_id: Mapped[str | None] = mapped_column(String(40))  # migration 0004_jobs: the Profile of profile=True


class JobEventRow(Base):
    """One row per state transition, with the reason."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
