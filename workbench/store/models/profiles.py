"""Profiles: traces captured from jobs or loaded from files. Owned by `workbench.profiles`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class ProfileRow(Base):
    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    job_id: Mapped[str | None] = mapped_column(String(40), index=True)
    device: Mapped[str | None] = mapped_column(String(200))
    framework: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(32))  # kineto | jax | chrome
    events: Mapped[int | None]
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
