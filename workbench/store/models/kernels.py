"""Kernel check and benchmark results. Owned by `workbench.kernels`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class KernelResultRow(Base):
    __tablename__ = "kernel_results"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kernel: Mapped[str] = mapped_column(String(200), index=True)
    backend: Mapped[str] = mapped_column(String(16))
    what: Mapped[str] = mapped_column(String(8))  # check | bench
    dtype: Mapped[str] = mapped_column(String(16))
    shape: Mapped[str] = mapped_column(String(200))
    device_model: Mapped[str | None] = mapped_column(String(100))
    interpreted: Mapped[bool] = mapped_column(default=False)
    ok: Mapped[bool | None]
    max_abs_err: Mapped[float | None]
    max_rel_err: Mapped[float | None]
    skipped_reason: Mapped[str | None] = mapped_column(String(2000))
    median_ms: Mapped[float | None]
    gbps: Mapped[float | None]
    tflops: Mapped[float | None]
    baseline_ms: Mapped[float | None]
    owner: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
