"""`LocalSliceService` (`wb.slices`): the verbs on leases, in this process, over the database.

Every decision runs inside one allocation transaction (`txn`): it expires stale leases, reads
what is held, decides (the book, the scheduler, the pure engine in `placement` and the MIG planner
in `mig`) and writes the result, so two processes never hand out the same capacity and a failed
request leaves nothing behind. This module holds the verbs only, thin: argument checks and the
transaction around each; the concerns live beside it (`capacity`, `book`, `request`, `scheduler`,
`environment`, `probes`, `sql`, `txn`). It implements `interface.SliceService`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.config import Settings
from workbench.endpoints.lease_end import Marked, mark_stopped
from workbench.errors import Conflict, Forbidden, InvalidRequest, NotFound
from workbench.inventory.devices import Inventory
from workbench.units import as_utc
from workbench.slices.book import MIB, Book
from workbench.slices.capacity import Capacity
from workbench.slices.interface import SliceService
from workbench.slices.keepalive import KeepAlive
from workbench.slices.lease import Lease, LeaseList
from workbench.slices.mig import MigPlan, plan_mig
from workbench.slices.offers import DeviceOffers, fleet_offers
from workbench.slices.probes import DeviceSource, DeviceUse, UsageProbe, mark_idle
from workbench.slices.request import Request, make_request, validate
from workbench.slices.scheduler import Scheduler
from workbench.slices.spec import SliceSpec, parse_spec
from workbench.slices.sql import HELD_OR_QUEUED, INSERT_LEASE, LEASE_BY_ID, RELEASE, RELEASE_OWN, HeldRow, LeaseValues
from workbench.slices.txn import AllocationLock, Txn
from workbench.slices.types import OPEN_STATES, LeaseColumns
from workbench.store.engine import Store
from workbench.store.models.base import new_id, utcnow
from workbench.store.models.slices import LeaseEventRow, LeaseRow
from workbench.units import check_name, check_priority

Row = TypeVar("Row", LeaseRow, LeaseValues)


class LeaseEndpoints(Protocol):
    """What the slices need of the endpoint service: endpoints live as long as their lease."""

    def end_marked(self, marked: Sequence[Marked]) -> None: ...

    def reap(self) -> int: ...


class LocalSliceService:
    """`wb.slices`: request, list, get, renew, release leases; plan MIG layouts.

    Its siblings come in explicitly: the settings, the store and the endpoint service (both made
    when first needed: opening the store migrates it), and where the inventory comes from.
    `clock`, `sleep` and `usage_probe` are the seams tests replace.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Callable[[], Store],
        devices: DeviceSource,
        endpoints: Callable[[], LeaseEndpoints],
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        usage_probe: UsageProbe | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._endpoints = endpoints
        self._clock = clock
        self._sleep = sleep
        self._probe: UsageProbe = usage_probe or DeviceUse(devices)
        self.capacity = Capacity(devices, settings)
        self._scheduler = Scheduler(self.capacity, settings, clock)
        self._lock = AllocationLock(store)

    def close(self) -> None:
        self._lock.close()

    def __repr__(self) -> str:
        return f"<SliceService user={self.settings.user!r} devices={self.inventory!r}>"

    @property
    def inventory(self) -> Inventory:
        return self.capacity.inventory

    @property
    def lease_ttl_s(self) -> float:
        return float(self.settings.lease_ttl_s)

    def check(self, spec: str | float) -> SliceSpec:
        """Parse `spec` and check it against this fleet as `request` does, leasing nothing.

        A job that names a slice this fleet can never grant (`1g.10gb` on a machine without a GPU)
        is refused when it is submitted, not 0.2 s later when it asks for the slice.
        """
        parsed = parse_spec(spec)
        validate(Request(parsed, cpu_milli=parsed.cpu_milli), self.capacity)
        return parsed

    def request(
        self,
        spec: str | float = "cpu",
        *,
        owner: str | None = None,
        project: str | None = None,
        priority: int = 0,
        ttl_s: float | None = None,
        wait: bool = True,
        timeout_s: float | None = None,
        models: Sequence[str] | str | None = None,
        min_memory_bytes: int | str | None = None,
        node: str | None = None,
        policy: str | None = None,
        cpu_cores: float | None = None,
        memory_bytes: int | str | None = None,
        on_queued: Callable[[Lease], None] | None = None,
    ) -> Lease:
        """Lease part of a device. Returns an active lease, or waits in the queue (`wait=True`).

        `wait=False` raises `Conflict` at once, with the reason, when the request cannot be met now;
        `timeout_s` bounds the wait (then `Conflict`). `models` (any-of) and `min_memory_bytes`
        constrain the GPU; `cpu_cores`/`memory_bytes` add host CPU and memory to a GPU slice, or
        set a CPU slice's memory. Impossible requests raise `InvalidRequest` saying why.
        `on_queued(lease)` is called once when the request joins the queue, before the wait, so
        that a caller (a job waiting for its slice) can point at the queued lease, whose
        `queue_position` and `reason` say where it stands.
        """
        # `owner` lets a trusted face (the Jupyter server, the jobs scheduler) request for the user
        # it acts for; acting on an existing lease is what ownership guards (renew, release).
        owner = check_name(owner or self.settings.user, "owner")
        if project is not None:
            check_name(project, "project")
        check_priority(priority)
        req = make_request(
            spec, models=models, min_memory_bytes=min_memory_bytes, node=node, policy=policy,
            cpu_cores=cpu_cores, memory_bytes=memory_bytes,
        )
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidRequest(f"ttl_s={ttl_s} must be more than 0 seconds")
        validate(req, self.capacity)
        if req.spec.kind != "mig":
            req.tasks(self.capacity)  # worked out here, so the decision under the lock finds them ready
        ttl = float(ttl_s or self.settings.lease_ttl_s)
        project = project or self.settings.project
        nothing_held: Book[HeldRow] = Book(self.capacity, [])  # does the quota allow this request at all?
        too_big = nothing_held.quota_block(owner, project, req.gpus, req.cpu_milli / 1000, req.host_memory_mib * MIB)
        if too_big:
            raise InvalidRequest(too_big.replace("quota exceeded", "quota can never allow this request"))
        now = self._clock()
        lease_id = new_id("lease")
        # Plain values, not an ORM object: the common path writes them with one INSERT.
        row = LeaseValues(
            id=lease_id, owner=owner, project=project, kind=req.spec.kind, state="queued", node=None, device_keys=[],
            profile=req.spec.profile, mig_start=None, gpu_milli=0, cpu_milli=req.cpu_milli, memory_bytes=0,
            priority=int(priority), request=req.as_json(), env={}, reason=None, ttl_s=ttl, created_at=now,
            heartbeat_at=now, expires_at=now + dt.timedelta(seconds=ttl),
        )
        with self._lock.transaction() as txn:
            held = self._request_locked(txn, row, req, now, wait)
        lease = Lease.from_row(held, self)
        if lease.state == "queued":
            if on_queued is not None:
                on_queued(lease)
            lease = self._wait(lease, timeout_s)
        return lease

    def _request_locked(self, txn: Txn, row: LeaseValues, req: Request, now: dt.datetime, wait: bool) -> LeaseColumns:
        """Decide and record `row` (a new queued lease) holding the allocation lock: granted, or
        queued with its reason; `Conflict` (nothing written) when it must not wait. Returns the row
        as recorded."""
        text = req.spec.text
        held = [HeldRow._make(r) for r in txn.run(HELD_OR_QUEUED, now=now)]
        scheduler = self._scheduler
        if not any(r.stale or r.state == "queued" for r in held):
            # Nobody waits and nothing expired: if it fits as things are, grant it at once.
            placement, _ = scheduler.fit(Book(self.capacity, held), row, req)
            if placement is not None:
                scheduler.grant(txn.connection, row, placement, now)
                txn.run(INSERT_LEASE, **row.columns())
                return row
        # Others wait, leases expired, or it does not fit now: it joins the queue, where requests
        # are decided in fair order and room can be made (idle reclaim, preemption).
        s = txn.session
        queued = LeaseRow(**row.columns())
        s.add(queued)
        scheduler.schedule(txn, now)
        if queued.state != "active" and not wait:
            reason = queued.reason or "cannot be placed now"
            raise Conflict(f"{text} cannot be granted now: {reason}", reason=reason)  # rolls it all back
        if queued.state == "queued":
            scheduler.event(s, queued.id, "queued", {"reason": queued.reason, "position": queued.queue_position})
        return queued

    def _wait(self, lease: Lease, timeout_s: float | None) -> Lease:
        start = time.monotonic()
        delay = 0.02
        observed = start
        while True:
            self._sleep(delay)
            delay = min(delay * 1.5, 0.5)
            now = self._clock()
            with self._lock.transaction() as txn:
                s = txn.session
                row = s.get(LeaseRow, lease.id)
                if row is None:
                    raise NotFound(f"lease {lease.id} vanished while waiting")
                if row.state == "queued":
                    row.heartbeat_at = now
                    row.expires_at = now + dt.timedelta(seconds=row.ttl_s)
                    if time.monotonic() - observed > 10:
                        # Someone is waiting: look for idle leases that could be reclaimed.
                        observed = time.monotonic()
                        self._scheduler.expire(txn, now)
                        self._mark_idle(s, now)
                    self._scheduler.schedule(txn, now)
                gave_up = row.state == "queued" and timeout_s is not None and time.monotonic() - start >= timeout_s
                reason = row.reason
                if gave_up:
                    self._scheduler.end(s, row, "released", now, f"gave up after waiting {timeout_s:g} s: {reason}")
                current = Lease.from_row(row, self)
            if gave_up:
                raise Conflict(f"{current.spec} not granted within {timeout_s:g} s: {reason}", reason=reason)
            if current.state != "queued":
                if current.state != "active":
                    raise Conflict(f"lease {current.id} ended while queued ({current.state}): {current.reason}")
                return current

    def get(self, lease_id: str) -> Lease:
        with self._store().session() as s:
            row = s.get(LeaseRow, lease_id)
            if row is None:
                raise NotFound(f"no lease {lease_id!r}; see wb.slices.list()")
            return Lease.from_row(row, self, now=self._clock())

    def list(self, owner: str | None = None, all_users: bool = False, include_ended: bool = False) -> LeaseList:
        """Leases of `owner` (default: you), or everyone's with `all_users=True`; live and queued unless `include_ended`."""
        q = select(LeaseRow).order_by(LeaseRow.created_at)
        if not all_users:
            q = q.where(LeaseRow.owner == (owner or self.settings.user))
        if not include_ended:
            q = q.where(LeaseRow.state.in_(OPEN_STATES))
        now = self._clock()
        with self._store().session() as s:
            return LeaseList(Lease.from_row(r, self, now=now) for r in s.scalars(q).all())

    def renew(self, lease_id: str) -> Lease:
        """Heartbeat: the lease now expires one TTL from now. Ended leases cannot be renewed."""
        now = self._clock()
        with self._lock.transaction() as txn:
            s = txn.session
            row = self._owned(s, lease_id, "renew")
            if row.state not in OPEN_STATES:
                raise Conflict(f"lease {lease_id} is {row.state} ({row.reason or 'ended'}); request a new slice")
            expires_at = as_utc(row.expires_at)
            if expires_at is not None and expires_at < now:
                self._scheduler.end(s, row, "expired", now, "not renewed within its TTL")
                raise Conflict(f"lease {lease_id} expired at {expires_at:%H:%M:%S} UTC before this renewal; request a new slice")
            row.heartbeat_at = now
            row.expires_at = now + dt.timedelta(seconds=row.ttl_s)
            return Lease.from_row(row, self)

    def keep_alive(self) -> KeepAlive:
        """The renewals of one open face (a dashboard tab): it renews the leases it shows while open."""
        return KeepAlive(self, self._clock)

    def release(self, lease_id: str) -> Lease:
        """Give the slice back. Idempotent: releasing an ended lease returns it unchanged."""
        now = self._clock()
        by = self.settings.user
        with self._lock.transaction() as txn:
            # The common case, one statement: the owner ends a lease that is still live.
            found = txn.run(RELEASE_OWN, lease_id=lease_id, by_owner=by, ended_at=now)
            reason = None
            if not found:  # not theirs, ended already, or no such lease: find out which
                found = txn.run(LEASE_BY_ID, lease_id=lease_id)
                before = self._check_owner(LeaseValues(*found[0]) if found else None, lease_id, "release")
                if before.state not in OPEN_STATES:
                    return Lease.from_row(before, self)  # idempotent: the ended lease, unchanged
                reason = None if by == before.owner else f"released by {by}"
                found = txn.run(RELEASE, lease_id=lease_id, ended_at=now, reason=reason)
            row = LeaseValues(*found[0])
            self._scheduler.event(txn.connection, lease_id, "released", {"reason": reason, "by": by})
            # Endpoints live as long as their lease: marked here, their processes ended below.
            stopped = mark_stopped(txn.connection, lease_id, f"its slice {lease_id} was released", now)
            self._scheduler.schedule(txn, now, expire=False)  # expiry is checked by the next request
        if stopped:
            self._endpoints().end_marked(stopped)
        return Lease.from_row(row, self)

    def sweep(self) -> dict[str, int]:
        """Expire leases past their TTL, check idle ones and grant what now fits; returns counts."""
        now = self._clock()
        with self._lock.transaction() as txn:
            expired = self._scheduler.expire(txn, now)
            idle = self._mark_idle(txn.session, now)
            granted = self._scheduler.schedule(txn, now, expire=False)
        self._endpoints().reap()  # endpoints of leases that ended (expired, preempted, ...)
        return {"expired": expired, "idle": idle, "granted": granted}

    def events(self, lease_id: str) -> builtins.list[dict[str, Any]]:
        """The recorded decisions about a lease (queued, granted, idle, reclaimed, preempted, ...)."""
        with self._store().session() as s:
            rows = s.scalars(select(LeaseEventRow).where(LeaseEventRow.lease_id == lease_id).order_by(LeaseEventRow.id)).all()
            return [{"at": as_utc(r.at), "event": r.event, **(r.detail or {})} for r in rows]

    def plan_mig(self, model: str, profiles: Sequence[str], existing: Iterable[str] = ()) -> MigPlan:
        """Plan MIG instances on one GPU of `model` beside `existing` (PROFILE@START). See `mig.plan_mig`."""
        return plan_mig(model, list(profiles), existing)

    def offers(self) -> builtins.list[DeviceOffers]:
        """Every kind of device in this fleet with what can be requested on it (`offers`); the
        faces build their choices from this, so they offer exactly what `request` grants."""
        return fleet_offers(self.inventory)

    # -- internals ----------------------------------------------------------------------------
    def _owned(self, s: Session, lease_id: str, verb: str) -> LeaseRow:
        return self._check_owner(s.get(LeaseRow, lease_id), lease_id, verb)

    def _check_owner(self, row: Row | None, lease_id: str, verb: str) -> Row:
        """`row`, if it exists and this user owns it (or is an admin); else why not."""
        if row is None:
            raise NotFound(f"no lease {lease_id!r}; see wb.slices.list()")
        user = self.settings.user
        if row.owner != user and user not in self.settings.admin_users:
            raise Forbidden(f"{user} cannot {verb} lease {lease_id}: it belongs to {row.owner}")
        return row

    def _mark_idle(self, s: Session, now: dt.datetime) -> int:
        return mark_idle(s, now, self.settings, lambda row: self._probe(self, Lease.from_row(row, self)), self._scheduler.event)


def _implements(service: LocalSliceService) -> SliceService:
    """Never called: mypy checks here that the local service implements the interface."""
    return service
