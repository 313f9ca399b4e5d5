"""Devices seen by discovery or declared, kept so leases and metrics can refer to them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class DeviceRow(Base):
    __tablename__ = "devices"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "node/index" or "node/cpu"
    node: Mapped[str] = mapped_column(String(200), index=True)
    index: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(100))
    uuid: Mapped[str | None] = mapped_column(String(100))
    memory_bytes: Mapped[int | None]
    mig: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(16))
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
