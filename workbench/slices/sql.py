"""The slices' SQL: the statements of the allocation's hot path, and the shapes of the rows they return.

Built once at import (building a statement costs more than running it) and run on the driver
(`DriverStatement`): every process waits on them behind the allocation lock. A lease is seen in
four shapes, each typed here or in the models: the ORM row (`LeaseRow`, the paths that are not
hot), a new lease's plain values (`LeaseValues`, written with one INSERT), what the book reads of
a held lease (`HeldRow`, `BookRow`). `Lease` records are made from any of them (`LeaseColumns`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Table, bindparam, insert, or_, select, update

from workbench.slices.types import LIVE_STATES, OPEN_STATES
from workbench.store.engine import DriverStatement
from workbench.store.models.slices import LeaseEventRow, LeaseRow
from workbench.units import jsonable

_TABLE: Table = LeaseRow.__table__  # type: ignore[assignment]  # a declarative model's table is a Table
_EVENTS: Table = LeaseEventRow.__table__  # type: ignore[assignment]

_BOOK_COLUMNS = (
    LeaseRow.id, LeaseRow.owner, LeaseRow.project, LeaseRow.kind, LeaseRow.state, LeaseRow.node, LeaseRow.device_keys,
    LeaseRow.profile, LeaseRow.mig_start, LeaseRow.gpu_milli, LeaseRow.cpu_milli, LeaseRow.memory_bytes,
    # The one number the book needs from the usage JSON, extracted by the database (decoding
    # every lease's usage sample cost more than the rest of the row).
    LeaseRow.usage["_host_memory_mib"].as_integer().label("host_memory_mib"),
)
# What making room also weighs: who may be preempted or reclaimed (read on the queue's path).
_ROOM_COLUMNS = (LeaseRow.priority, LeaseRow.granted_at, LeaseRow.idle_at)


class HeldRow(NamedTuple):
    """What the book reads of a lease that holds or waits for capacity, and whether it is past its expiry."""

    id: str
    owner: str
    project: str
    kind: str
    state: str
    node: str | None
    device_keys: list[str]
    profile: str | None
    mig_start: int | None
    gpu_milli: int
    cpu_milli: int
    memory_bytes: int
    host_memory_mib: int | None
    stale: bool


class BookRow(NamedTuple):
    """A live lease as the queue's pass reads it: what the book holds, and what making room weighs."""

    id: str
    owner: str
    project: str
    kind: str
    state: str
    node: str | None
    device_keys: list[str]
    profile: str | None
    mig_start: int | None
    gpu_milli: int
    cpu_milli: int
    memory_bytes: int
    host_memory_mib: int | None
    priority: int
    granted_at: dt.datetime | None
    idle_at: dt.datetime | None


@dataclass(slots=True)
class LeaseValues:
    """Every column of a lease as plain values: a new lease (written with one INSERT: an ORM
    instance's instrumented attributes cost more than the rest of building it) or a row a
    statement returned. Fields in the table's column order (checked below)."""

    id: str
    owner: str
    project: str
    kind: str
    state: str
    node: str | None
    device_keys: list[str]
    profile: str | None
    mig_start: int | None
    gpu_milli: int
    cpu_milli: int
    memory_bytes: int
    priority: int
    request: dict[str, Any]
    env: dict[str, Any]
    reason: str | None
    ttl_s: float
    created_at: dt.datetime
    granted_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    queue_position: int | None = None
    last_active_at: dt.datetime | None = None
    idle_at: dt.datetime | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def host_memory_mib(self) -> int:
        return int((self.usage or {}).get("_host_memory_mib", 0))

    def columns(self) -> dict[str, Any]:
        """Every column (an INSERT with the same keys each time caches well)."""
        return {key: getattr(self, key) for key in COLUMN_KEYS}


COLUMN_KEYS = tuple(c.key for c in _TABLE.columns)
# The rows above are read by position: their fields must be the statements' columns, in order.
assert tuple(f.name for f in fields(LeaseValues)) == COLUMN_KEYS, "LeaseValues must list the leases table's columns"
assert HeldRow._fields == (*(c.key for c in _BOOK_COLUMNS), "stale"), "HeldRow must match _BOOK_COLUMNS"
assert BookRow._fields == tuple(c.key for c in (*_BOOK_COLUMNS, *_ROOM_COLUMNS)), "BookRow must match the book's columns"


def _state_is(*states: str) -> ColumnElement[bool]:
    """`state IN (...)` spelt as ORs (SQLite plans it as IN): the driver path takes no expanding lists."""
    return or_(*(LeaseRow.state == state for state in states))


HELD_OR_QUEUED = DriverStatement(
    select(*_BOOK_COLUMNS, (LeaseRow.expires_at < bindparam("now")).label("stale")).where(_state_is(*OPEN_STATES))
)
LIVE = DriverStatement(select(*_BOOK_COLUMNS, *_ROOM_COLUMNS).where(_state_is(*LIVE_STATES)))
ANY_QUEUED = DriverStatement(select(LeaseRow.id).where(LeaseRow.state == "queued").limit(1))
EXPIRED_IDS = DriverStatement(select(LeaseRow.id).where(_state_is(*OPEN_STATES), LeaseRow.expires_at < bindparam("now")))
LEASE_BY_ID = DriverStatement(select(_TABLE).where(_TABLE.c.id == bindparam("lease_id")))
RELEASE = DriverStatement(
    update(_TABLE).where(_TABLE.c.id == bindparam("lease_id"))
    .values(state="released", ended_at=bindparam("ended_at"), reason=bindparam("reason"), queue_position=None)
    .returning(*_TABLE.c)
)
RELEASE_OWN = DriverStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("lease_id"), _TABLE.c.owner == bindparam("by_owner"), _state_is(*OPEN_STATES))
    .values(state="released", ended_at=bindparam("ended_at"), reason=None, queue_position=None)
    .returning(*_TABLE.c)
)
INSERT_LEASE = DriverStatement(insert(_TABLE), column_keys=list(COLUMN_KEYS))
_INSERT_EVENT = DriverStatement(insert(_EVENTS), column_keys=["lease_id", "at", "event", "detail"])


def insert_event(connection: Connection, lease_id: str, at: dt.datetime, event: str, detail: dict[str, Any]) -> None:
    """Record a decision about a lease, with its evidence (`lease_events`)."""
    _INSERT_EVENT.run(connection, {"lease_id": lease_id, "at": at, "event": event, "detail": jsonable(detail)})


