"""What ends an endpoint when its lease ends, inside the slices' own transaction.

`SliceService.release` runs `mark_stopped` on the allocation's connection: one indexed UPDATE on
the driver (the statement SQLAlchemy compiles once; see `DriverStatement`), which costs the
release path next to nothing when the lease serves no endpoint. The processes of the endpoints it
marks are ended after the transaction (`EndpointService.end_marked`). Kept apart from the service
so the slices' hot path imports only SQLAlchemy and the table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, or_, update

from workbench.store.engine import DriverStatement
from workbench.store.models.endpoints import EndpointRow

_TABLE = EndpointRow.__table__


class Marked(NamedTuple):
    """An endpoint just marked stopped: what ending its process needs."""

    id: str
    lease_id: str
    pid: int | None
    node: str | None
    config: dict[str, Any]


_MARK_STOPPED = DriverStatement(
    update(_TABLE)
    # Bind names other than the columns': SQLAlchemy reserves those in an UPDATE's SET clause.
    .where(_TABLE.c.lease_id == bindparam("for_lease"), or_(_TABLE.c.state == "starting", _TABLE.c.state == "ready"))
    .values(state="stopped", reason=bindparam("why"), stopped_at=bindparam("at"))
    .returning(_TABLE.c.id, _TABLE.c.lease_id, _TABLE.c.pid, _TABLE.c.node, _TABLE.c.config)
)


def mark_stopped(connection: Connection, lease_id: str, reason: str, now: dt.datetime) -> list[Marked]:
    """Mark the live endpoints of `lease_id` stopped with `reason`; the ones it marked."""
    return [Marked(*row) for row in _MARK_STOPPED.run(connection, {"for_lease": lease_id, "why": reason, "at": now})]
