"""Keep-alive: the one rule by which a face renews the leases it shows, while it is open.

A lease expires unless renewed (`lease_ttl_s`), so that a crashed kernel never holds a GPU. A face
(a dashboard tab, the JupyterLab sidebar) is a person looking at their slices: while it is open
it renews the live leases it shows, and when it closes it stops, so a closed browser lets its
slices expire one TTL later. The rule, for every face:

- **what**: the live (active or idle) leases the face shows, except those the user turned
  auto-renew off for in that face;
- **when**: once a third of the TTL has passed since the last renewal (`renew_due_at`), so two
  missed beats still leave a third of the TTL before the lease expires.

Faces call it through the facade: `wb.slices.keep_alive()` gives a `KeepAlive` for one open face;
the face calls `beat(leases)` on its own timer and `close()` when it closes. The sidebar, which
runs in the browser, reads `Lease.renew_at` from the REST API and renews through it on the same rule.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.slices.interface import SliceService
    from workbench.slices.lease import Lease, LeaseRecord

RENEW_AFTER_TTL_FRACTION = 1 / 3
"""A lease is renewed once this fraction of its TTL has passed since it was last renewed."""


def renew_due_at(expires_at: dt.datetime | None, ttl_s: float) -> dt.datetime | None:
    """When a face that shows the lease renews it: a third of the TTL after the last renewal."""
    if expires_at is None or ttl_s <= 0:
        return None
    return expires_at - dt.timedelta(seconds=ttl_s * (1 - RENEW_AFTER_TTL_FRACTION))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KeepAlive:
    """The renewals of one open face; thread-safe (a dashboard tab's callbacks run on a pool).

    Auto-renew is on for every lease the face shows until the user turns it off for that lease;
    the setting belongs to this face (another open face that shows the lease keeps its own).
    """

    def __init__(self, slices: SliceService, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._slices = slices
        self._clock = clock
        self._off: set[str] = set()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def period_s(self) -> float:
        """How often a face should beat: a tenth of the TTL (5 s at most), so a renewal lands well
        before the expiry even when a beat runs late."""
        ttl_s = self._slices.lease_ttl_s
        return min(5.0, max(0.1, ttl_s / 10))

    @property
    def closed(self) -> bool:
        return self._closed

    def auto_renew(self, lease_id: str) -> bool:
        """Whether this face renews the lease (on unless the user turned it off here)."""
        with self._lock:
            return lease_id not in self._off

    def set_auto_renew(self, lease_id: str, on: bool) -> None:
        with self._lock:
            if on:
                self._off.discard(lease_id)
            else:
                self._off.add(lease_id)

    def due(self, lease: Lease, now: dt.datetime | None = None) -> bool:
        """Whether a beat at `now` renews this lease."""
        if self._closed or not lease.live or not self.auto_renew(lease.id):
            return False
        at = lease.renew_at
        return at is not None and (now or self._clock()) >= at

    def beat(self, leases: Iterable[Lease]) -> list[LeaseRecord]:
        """Renew the shown leases that are due; returns the renewed ones (as the store now has them).

        A lease that ended meanwhile (released elsewhere, preempted) is skipped: the next read
        shows it ended, and there is nothing left to keep.
        """
        from workbench.errors import WorkbenchError

        now = self._clock()
        renewed: list[LeaseRecord] = []
        for lease in leases:
            if not self.due(lease, now):
                continue
            try:
                renewed.append(self._slices.renew(lease.id))
            except WorkbenchError:
                continue
        return renewed

    def close(self) -> None:
        """The face closed: no beat renews anything any more."""
        self._closed = True
