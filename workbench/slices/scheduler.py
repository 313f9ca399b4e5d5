"""The scheduler: the queue's pass in fair order, granting, expiry, and making room (preemption, idle reclaim).

Runs inside the allocation transaction (`txn.Txn`). Queued requests are taken in order of
priority (high first), then the owner's dominant share of the fleet (dominant resource fairness:
the owner holding the smallest share of their most-used resource goes first), then age. Each is
checked against its owner's and project's quotas, then placed; if it does not fit, idle leases
past their grace period are reclaimed, else lower-priority leases that have run at least
`preempt_min_runtime_s` are preempted. What stays queued gets its position and reason. Every
decision is recorded as a lease event, with its evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from workbench.config import Settings
from workbench.units import as_utc
from workbench.slices.book import MIB, Book, Owned, Placement, Preemptible
from workbench.slices.capacity import Capacity
from workbench.slices.environment import slice_env
from workbench.slices.placement import FULL
from workbench.slices.request import Request
from workbench.slices.sql import ANY_QUEUED, EXPIRED_IDS, LIVE, BookRow, LeaseValues, insert_event
from workbench.slices.txn import Txn
from workbench.slices.types import LeaseState
from workbench.store.models.base import utcnow
from workbench.store.models.slices import LeaseRow


class Scheduler:
    """Decisions about leases inside an allocation transaction; `clock` is the service's."""

    def __init__(self, capacity: Capacity, settings: Settings, clock: Callable[[], dt.datetime]) -> None:
        self.capacity = capacity
        self.settings = settings
        self._clock = clock

    def event(self, on: Session | Connection, lease_id: str, event: str, detail: dict[str, Any]) -> None:
        """Record a decision about a lease, with its evidence, at the service's clock."""
        connection = on.connection() if isinstance(on, Session) else on
        insert_event(connection, lease_id, self._clock(), event, detail)

    def end(self, s: Session, row: LeaseRow, state: LeaseState, now: dt.datetime, reason: str | None) -> None:
        """End a lease (`state` is one of the ended states), saying why."""
        row.state = state
        row.ended_at = now
        row.reason = reason
        row.queue_position = None
        self.event(s, row.id, state, {"reason": reason, "by": self.settings.user})

    def expire(self, txn: Txn, now: dt.datetime) -> int:
        """End the leases (and queued requests) not renewed within their TTL; returns how many."""
        ids = [r[0] for r in txn.run(EXPIRED_IDS, now=now)]
        if not ids:
            return 0
        s = txn.session
        stale = s.scalars(select(LeaseRow).where(LeaseRow.id.in_(ids))).all()
        for row in stale:
            self.end(s, row, "expired", now, f"not renewed within its TTL of {row.ttl_s:g} s")
        return len(stale)

    def schedule(self, txn: Txn, now: dt.datetime, *, expire: bool = True) -> int:
        """Grant what fits among the queued requests, in fair order. Returns how many were granted."""
        if expire:
            self.expire(txn, now)
        if not txn.run(ANY_QUEUED):
            return 0
        s = txn.session
        queued = s.scalars(select(LeaseRow).where(LeaseRow.state == "queued")).all()
        book: Book[Preemptible] = Book(self.capacity, [BookRow._make(r) for r in txn.run(LIVE)])
        order = sorted(queued, key=lambda r: (-r.priority, book.dominant_share(r.owner), as_utc(r.created_at), r.id))
        granted = 0
        position = 0
        for row in order:
            req = Request.from_json(row.request)
            placement, reason = self._admit(s, book, row, req, now)
            if placement is not None:
                self.grant(s, row, placement, now)
                book.add(row)
                granted += 1
                continue
            position += 1
            row.queue_position = position
            row.reason = reason
        return granted

    def fit(self, book: Book[Any], row: Owned, req: Request) -> tuple[Placement | None, str | None]:
        """Quotas, then placement as things are: the placement; or None with the quota that
        blocks it, or with no reason when it does not fit."""
        reason = book.quota_block(row.owner, row.project, req.gpus, row.cpu_milli / 1000, req.host_memory_mib * MIB)
        if reason is not None:
            return None, reason
        placement = book.place(req)
        if placement is None:
            return None, None
        # A fraction given as memory is a share only once its GPU is known: check it again.
        held = placement.gpu_milli * len(placement.device_keys) / FULL if req.spec.kind != "cpu" else 0.0
        memory = placement.memory_bytes if req.spec.kind == "cpu" else placement.host_memory_mib * MIB
        reason = book.quota_block(row.owner, row.project, held, placement.cpu_milli / 1000, memory)
        return (None, reason) if reason else (placement, None)

    def _admit(self, s: Session, book: Book[Preemptible], row: LeaseRow, req: Request, now: dt.datetime) -> tuple[Placement | None, str | None]:
        """Quotas, then placement, making room if allowed; the placement, or why not."""
        placement, reason = self.fit(book, row, req)
        if placement is not None or reason is not None:
            return placement, reason
        placement = self._make_room(s, book, row, req, now)
        return (placement, None) if placement is not None else (None, book.why_not(req))

    def grant(self, on: Session | Connection, row: LeaseRow | LeaseValues, p: Placement, now: dt.datetime) -> None:
        """Record the grant of `row` at `p`: where it is, what it holds, its environment, its expiry."""
        row.state = "active"
        row.node = p.node
        row.device_keys = list(p.device_keys)
        row.gpu_milli = p.gpu_milli
        row.cpu_milli = p.cpu_milli
        row.memory_bytes = p.memory_bytes
        row.profile = p.profile
        row.mig_start = p.mig_start
        row.granted_at = now
        row.heartbeat_at = now
        row.last_active_at = now
        row.expires_at = now + dt.timedelta(seconds=row.ttl_s)
        row.reason = None
        row.queue_position = None
        row.usage = {"_host_memory_mib": p.host_memory_mib} if p.host_memory_mib else {}
        row.env = slice_env(row.id, row.kind, p, self.capacity.inventory)
        self.event(on, row.id, "granted", {"node": p.node, "devices": p.device_keys, "profile": p.profile, "start": p.mig_start})

    # -- making room: preemption and idle reclaim ---------------------------------------------
    def _make_room(self, s: Session, book: Book[Preemptible], row: LeaseRow, req: Request, now: dt.datetime) -> Placement | None:
        """Free capacity for `row` by reclaiming idle leases past their grace, else by preempting
        lower-priority leases that ran at least the minimum runtime. Takes the fewest victims."""
        grace = self.settings.idle_grace_s
        min_runtime = self.settings.preempt_min_runtime_s
        reclaimable = [
            r for r in book.rows
            if r.state == "idle" and r.idle_at is not None and _seconds(now, r.idle_at) >= grace
        ]
        victims = self._victims(book, req, reclaimable)
        how = "reclaimed"
        if victims is None:
            preemptible = [
                r for r in book.rows
                if r.priority < row.priority and r.granted_at is not None and _seconds(now, r.granted_at) >= min_runtime
            ]
            victims = self._victims(book, req, preemptible)
            how = "preempted"
        if victims is None:
            return None
        for light in victims:
            book.remove(light)
            victim = s.get(LeaseRow, light.id)
            assert victim is not None
            if how == "reclaimed":
                evidence = dict(victim.usage or {})
                reason = (
                    f"reclaimed: idle since {as_utc(victim.idle_at):%Y-%m-%d %H:%M:%S} UTC (no device use; "
                    f"grace {grace:g} s passed) for {row.owner}'s waiting request {row.id}"
                )
                self.end(s, victim, "reclaimed", now, reason)
                self.event(s, victim.id, "reclaim-evidence", {"for": row.id, "evidence": evidence})
            else:
                reason = (
                    f"preempted by {row.owner}'s lease {row.id} (priority {row.priority} > {victim.priority}) "
                    f"after running {_seconds(now, victim.granted_at):.0f} s "
                    f"(minimum {min_runtime:g} s)"
                )
                self.end(s, victim, "preempted", now, reason)
        return book.place(req)

    def _victims(
        self, book: Book[Preemptible], req: Request, candidates: Sequence[Preemptible]
    ) -> list[Preemptible] | None:
        """The smallest set of `candidates` on one node whose removal lets `req` fit, or None."""
        by_node: dict[str, list[Preemptible]] = {}
        for r in candidates:
            by_node.setdefault(r.node or "", []).append(r)
        best: list[Preemptible] | None = None
        for rows in by_node.values():
            rows = sorted(rows, key=lambda r: (r.priority, -(as_utc(r.granted_at) or utcnow()).timestamp()))
            taken: list[Preemptible] = []
            for r in rows:
                if best is not None and len(taken) + 1 >= len(best):
                    break
                book.remove(r)
                taken.append(r)
                if book.place(req) is not None:
                    if best is None or len(taken) < len(best):
                        best = list(taken)
                    break
            for r in taken:
                book.add(r)
        return best


def _seconds(now: dt.datetime, then: dt.datetime | None) -> float:
    """Seconds from `then` (naive from SQLite: every stored time is UTC) to `now`; 0 when there is no `then`."""
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return (now - then).total_seconds()
