"""The declarative base and column helpers shared by every noun's tables."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # 64-bit integers on PostgreSQL (byte counts exceed 2**31); SQLite's INTEGER is already 64-bit
    # and must stay INTEGER for autoincrement primary keys.
    type_annotation_map = {
        int: BigInteger().with_variant(Integer(), "sqlite"),
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: DateTime(timezone=True),
    }


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id(prefix: str) -> str:
    """Short, readable ids: `job-3f2a9c1b7d4e`."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
