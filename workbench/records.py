"""What the records the services hand out (a `Lease`, a `Job`) share.

A record is a snapshot of a database row with a link back to the service that read it, so
`lease.refresh()` or `job.refresh()` re-reads the row and updates the object in place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Any, Self


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes; every time the workbench stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class ServiceRecord:
    """Mixin for dataclass records with an `id` and a `_service` field (the service's `get`)."""

    id: str
    _service: Any

    def _svc(self) -> Any:
        if self._service is None:
            raise RuntimeError(
                f"this {type(self).__name__} is detached from its service; read it again with the service's get({self.id!r})"
            )
        return self._service

    def _update(self, other: Self) -> Self:
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, getattr(other, f.name))
        return self

    def refresh(self) -> Self:
        """Re-read this record from the database."""
        return self._update(self._svc().get(self.id))
