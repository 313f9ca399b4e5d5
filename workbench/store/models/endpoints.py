"""Endpoints: a model served from a slice by a server process. Owned by `workbench.endpoints`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from workbench.store.models.base import Base, utcnow


class EndpointRow(Base):
    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    lease_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # starting | ready | stopped | failed
    model_path: Mapped[str] = mapped_column(String(2000))
    url: Mapped[str | None] = mapped_column(String(400))
    node: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None]
    token: Mapped[str | None] = mapped_column(String(200))  # the bearer token (None: no token needed)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # max_batch_size, max_wait_ms, provider, ...
    signature: Mapped[dict[str, Any]] = mapped_column(default=dict)  # inputs/outputs read from the ONNX file
    bench: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the last `bench` result
    reason: Mapped[str | None] = mapped_column(String(2000))  # why stopped or failed
    log_path: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[dt.datetime | None]
    stopped_at: Mapped[dt.datetime | None]
