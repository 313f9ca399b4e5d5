"""`SliceService` (`wb.slices`): requests, leases, the queue, quotas, fair share, preemption, idle reclaim.

Every decision runs inside `store.locked()`, the allocation lock: one transaction expires stale
leases, reads what is held, decides (the pure engine in `placement` and the MIG planner in `mig`)
and writes the result, so two processes never hand out the same capacity and a failed request
leaves nothing behind. The capacity comes from `wb.devices()` (this machine, or a declared fleet).

Scheduling pass (run on every request, release and while a caller waits): queued requests are
taken in order of priority (high first), then the owner's dominant share of the fleet (dominant
resource fairness: the owner holding the smallest share of their most-used resource goes first),
then age. Each is checked against its owner's and project's quotas, then placed; if it does not
fit, lower-priority leases that have run at least `preempt_min_runtime_s` may be preempted, and
idle leases past their grace period reclaimed. What stays queued gets its position and reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import math
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Self

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from workbench.endpoints.lease_end import mark_stopped
from workbench.errors import Conflict, Forbidden, InvalidRequest, NotFound
from workbench.inventory.catalog import lookup
from workbench.inventory.devices import Device, Inventory
from workbench.records import as_utc
from workbench.slices.keepalive import KeepAlive
from workbench.slices.lease import LIVE_STATES, Lease, LeaseList
from workbench.slices.offers import DeviceOffers, fleet_offers
from workbench.slices.placement import (
    DEFAULT_POLICY,
    FULL,
    ClusterState,
    Task,
    make_policy,
)
from workbench.slices.spec import SliceSpec, parse_spec
from workbench.units import check_name, check_priority, parse_size_bytes
from workbench.store.engine import DriverStatement
from workbench.store.models.base import new_id, utcnow
from workbench.store.models.slices import LeaseEventRow, LeaseRow

MIB = 1024**2
UsageProbe = Callable[["SliceService", Lease], "dict[str, Any] | None"]


@dataclass
class Placement:
    """Where a request goes; what the lease row records."""

    node: str
    device_keys: list[str]
    gpu_milli: int
    cpu_milli: int
    memory_bytes: int
    profile: str | None = None
    mig_start: int | None = None
    host_memory_mib: int = 0


class _Txn:
    """One allocation transaction: its connection, on which the hot statements run directly, and
    a session joined to the same transaction, made only when a slower path needs the ORM."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(bind=self.connection, expire_on_commit=False)
        return self._session

    def run(self, statement: DriverStatement, **params: Any) -> list[tuple[Any, ...]]:
        if self._session is not None:
            self._session.flush()  # what the ORM holds back is written first
        return statement.run(self.connection, params)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._session is not None:
            try:
                if exc_type is None:
                    self._session.flush()  # before the transaction commits
            finally:
                self._session.close()  # forgets what it loaded: nothing stale outlives the transaction


_QUOTA_UNITS = {"gpus": "GPUs", "cpus": "CPU cores", "memory_gib": "GiB of host memory"}


class Book:
    """The capacity left, given the live leases: an engine state plus MIG occupancy and usage totals."""

    def __init__(self, svc: SliceService, live: Iterable[LeaseRow]) -> None:
        self.svc = svc
        self.inv = svc.inventory
        self.rows: list[LeaseRow] = list(live)
        self._workload: list[Task] | None = None
        # MIG occupancy and per-user/project totals, summed when first asked for: a request for a
        # whole GPU or a fraction, with no quota set, never needs them.
        self._sums: tuple[dict[str, list[tuple[str, int]]], dict[tuple[str, str], list[float]]] | None = None
        # Sum what the leases hold in Python integers and write the arrays once: numpy's per-item
        # updates cost more than the whole sum, and this runs inside the allocation lock.
        base = svc._base_state()
        cpu_free, mem_free, gpu_free = base.cpu_free.tolist(), base.mem_free.tolist(), base.gpu_free.tolist()
        for row in self.rows:
            n, host_mib, columns = self._held_by(row)
            if n is not None:
                cpu_free[n] -= row.cpu_milli
                mem_free[n] -= host_mib
                for col in columns:
                    gpu_free[n][col] -= row.gpu_milli
        self.state = base.with_free(cpu_free, mem_free, gpu_free)

    @property
    def mig_used(self) -> dict[str, list[tuple[str, int]]]:
        """GPU key -> the MIG instances (profile, start) leased on it."""
        return self._totals()[0]

    @property
    def usage(self) -> dict[tuple[str, str], list[float]]:
        """("user"|"project", name) -> [GPUs, CPU cores, memory bytes] held."""
        return self._totals()[1]

    def _totals(self) -> tuple[dict[str, list[tuple[str, int]]], dict[tuple[str, str], list[float]]]:
        if self._sums is None:
            self._sums = ({}, {})
            for row in self.rows:
                self._account(row, +1, _host_mib(row))
        return self._sums

    @property
    def workload(self) -> list[Task]:
        """The held leases as engine tasks (what the fragmentation-aware policies weigh)."""
        if self._workload is None:
            self._workload = [_task_of(row) for row in self.rows]
        return self._workload

    # -- accounting ---------------------------------------------------------------------------
    def _held_by(self, row: LeaseRow) -> tuple[int | None, int, list[int]]:
        """Where a lease holds capacity: its node's index (None off the fleet), the host memory
        in MiB and the GPU columns it takes `gpu_milli` of (MIG instances are booked apart)."""
        svc = self.svc
        columns = []
        if row.kind in ("whole", "fraction"):
            columns = [c for c in (svc._gpu_column.get(key) for key in row.device_keys or []) if c is not None]
        return svc._node_index.get(row.node or ""), _host_mib(row), columns

    def _apply(self, row: LeaseRow, sign: int) -> None:
        n, host_mib, columns = self._held_by(row)
        if n is not None:
            self.state.cpu_free[n] -= sign * row.cpu_milli
            self.state.mem_free[n] -= sign * host_mib
            for col in columns:
                self.state.gpu_free[n, col] -= sign * row.gpu_milli
            self.state._refresh(n)
        if self._sums is not None:  # else summed from `rows` when first asked for
            self._account(row, sign, host_mib)
        self._workload = None

    def _account(self, row: LeaseRow, sign: int, host_mib: int) -> None:
        """MIG occupancy and the per-user and per-project totals (quotas, fair share)."""
        if row.kind == "mig" and row.device_keys:
            used = self.mig_used.setdefault(row.device_keys[0], [])
            item = (row.profile or "", int(row.mig_start or 0))
            if sign > 0:
                used.append(item)
            elif item in used:
                used.remove(item)
        gpus = row.gpu_milli * len(row.device_keys or []) / FULL if row.kind != "cpu" else 0.0
        mem = row.memory_bytes if row.kind == "cpu" else host_mib * MIB
        for key in (("user", row.owner), ("project", row.project)):
            totals = self.usage.setdefault(key, [0.0, 0.0, 0.0])
            totals[0] += sign * gpus
            totals[1] += sign * row.cpu_milli / 1000
            totals[2] += sign * mem

    def add(self, row: LeaseRow) -> None:
        self._apply(row, +1)
        self.rows.append(row)

    def remove(self, row: LeaseRow) -> None:
        self._apply(row, -1)
        self.rows.remove(row)

    def dominant_share(self, owner: str) -> float:
        gpus, cpus, mem = self.usage.get(("user", owner), [0.0, 0.0, 0.0])
        total_gpus = max(self.inv.gpu_count, 1)
        total_cpus = max(sum(n.cpu_milli for n in self.inv.nodes) / 1000, 1e-9)
        total_mem = max(sum(n.memory_mib for n in self.inv.nodes) * MIB, 1)
        return max(gpus / total_gpus, cpus / total_cpus, mem / total_mem)

    # -- quotas -------------------------------------------------------------------------------
    def quota_block(self, owner: str, project: str, gpus: float, cpus: float, memory_bytes: int = 0) -> str | None:
        """Why this request would exceed a quota now (with the numbers), or None. Quotas count
        GPUs (MIG instances and fractions by their share), CPU cores and host memory in GiB."""
        for scope, name in (("user", owner), ("project", project)):
            limits = self.svc._quota(scope, name)
            if not limits:
                continue
            held = self.usage.get((scope, name), [0.0, 0.0, 0.0])
            for resource, need, have in (
                ("gpus", gpus, held[0]), ("cpus", cpus, held[1]), ("memory_gib", memory_bytes / 1024**3, held[2] / 1024**3),
            ):
                limit = limits.get(resource)
                if limit is not None and need > 0 and have + need > limit + 1e-9:
                    unit = _QUOTA_UNITS[resource]
                    return (
                        f"quota exceeded: {scope} {name} holds {round(have, 3):g} of {limit:g} {unit}; "
                        f"this request needs {round(need, 3):g} more"
                    )
        return None

    # -- placement ----------------------------------------------------------------------------
    def place(self, req: Request) -> Placement | None:
        if req.spec.kind == "mig":
            return self._place_mig(req)
        state = self.state if req.node is None else self._only(req.node)
        for task, model in req.tasks(self.svc):
            choice = self.svc._policy(req.policy, task, self.workload).choose(state, task) if state.feasible(task).any() else None
            if choice is None:
                continue
            n, gpus = choice
            return self._placement(req, task, n, gpus, model)
        return None

    def _only(self, node: str) -> ClusterState:
        """The state with every node but `node` full (a request pinned to one node)."""
        n = self.svc._node_index[node]
        cpu_free = [-1] * len(self.state)
        cpu_free[n] = int(self.state.cpu_free[n])
        return self.state.with_free(cpu_free, self.state.mem_free.tolist(), self.state.gpu_free.tolist())

    def _placement(self, req: Request, task: Task, n: int, gpus: Sequence[int], model: Device | None) -> Placement:
        node = self.inv.nodes[n]
        if req.node and node.name != req.node:
            raise AssertionError("node constraint violated")
        if req.spec.kind == "cpu":
            return Placement(node.name, [f"{node.name}/cpu"], 0, task.cpu_milli, task.memory_mib * MIB)
        devices = [node.gpus[g] for g in gpus]
        keys = [d.key for d in devices]
        if req.spec.kind == "whole":
            memory = sum(d.memory_bytes or 0 for d in devices)
        else:
            dev_mem = devices[0].memory_bytes or 0
            memory = req.spec.gpu_memory_bytes or dev_mem * task.gpu_milli // FULL
        return Placement(node.name, keys, task.gpu_milli if task.shares_gpu else FULL, task.cpu_milli, memory,
                         host_memory_mib=task.memory_mib)

    def _place_mig(self, req: Request) -> Placement | None:
        from workbench.slices.mig import plan_mig

        best: tuple[int, Device, Any] | None = None
        for device in self.svc._mig_devices(req):
            if req.node and device.node != req.node:
                continue
            n = self.svc._node_index[device.node]
            if self.state.cpu_free[n] < req.cpu_milli or self.state.mem_free[n] < req.host_memory_mib:
                continue
            used = self.mig_used.get(device.key, [])
            profile = device.spec.mig_profile(req.spec.profile or "")
            assert profile is not None
            if device.mig_instances:
                # Instances that exist (discovered, or declared in the fleet): lease a free one.
                taken = {(p, s) for p, s in used}
                free = [i for i in device.mig_instances if i.profile == profile.name and (i.profile, i.start) not in taken]
                if not free:
                    continue
                start = free[0].start
            else:
                plan = plan_mig(device.model, [profile.name], [f"{p}@{s}" for p, s in used])
                if not plan.feasible:
                    continue
                start = plan.placements[0].start
            used_slices = sum((device.spec.mig_profile(p).memory_slices if device.spec.mig_profile(p) else 0) for p, _ in used)
            # Best fit: the GPU already holding the most, so empty GPUs stay whole for big profiles.
            if best is None or used_slices > best[0]:
                best = (used_slices, device, start)
        if best is None:
            return None
        _, device, start = best
        profile = device.spec.mig_profile(req.spec.profile or "")
        assert profile is not None
        return Placement(
            device.node, [device.key], round(FULL * profile.compute_slices / 7), req.cpu_milli,
            profile.memory_bytes, profile.name, start, host_memory_mib=req.host_memory_mib,
        )

    def why_not(self, req: Request) -> str:
        if req.spec.kind == "mig":
            devices = self.svc._mig_devices(req)
            return f"busy: no free room for {req.spec.profile} on the {len(devices)} MIG GPU(s) that offer it"
        tasks = req.tasks(self.svc)
        return self.state.why_not(tasks[0][0]) if tasks else "no device matches this request"


@dataclass
class Request:
    """A request as stored in a lease row's `request` column, parsed."""

    spec: SliceSpec
    models: tuple[str, ...] = ()
    min_memory_bytes: int | None = None
    node: str | None = None
    policy: str | None = None
    cpu_milli: int = 0
    host_memory_mib: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        return cls(
            spec=parse_spec(data["spec"]), models=tuple(data.get("models") or ()),
            min_memory_bytes=data.get("min_memory_bytes"), node=data.get("node"), policy=data.get("policy"),
            cpu_milli=int(data.get("cpu_milli") or 0), host_memory_mib=int(data.get("host_memory_mib") or 0),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.text, "models": list(self.models), "min_memory_bytes": self.min_memory_bytes,
            "node": self.node, "policy": self.policy, "cpu_milli": self.cpu_milli, "host_memory_mib": self.host_memory_mib,
        }

    @property
    def gpus(self) -> float:
        """GPU-equivalents this request takes (for quotas), before placement."""
        if self.spec.kind == "whole":
            return float(self.spec.gpu_count)
        if self.spec.kind == "fraction":
            return self.spec.gpu_milli / FULL if self.spec.gpu_milli else 0.0
        if self.spec.kind == "mig" and self.spec.profile:
            return round(int(self.spec.profile.split("g.")[0]) / 7, 3)  # compute slices of 7
        return 0.0

    def tasks(self, svc: SliceService) -> list[tuple[Task, Device | None]]:
        """Engine tasks to try, in order (one per GPU model for memory-sized fractions). They depend
        on the request and the inventory only, so they are worked out once, outside the lock."""
        cached = self.__dict__.get("_tasks")
        if cached is None:
            cached = self.__dict__["_tasks"] = self._tasks_for(svc)
        return cached

    def _tasks_for(self, svc: SliceService) -> list[tuple[Task, Device | None]]:
        if self.spec.kind == "cpu":
            node_mib = svc._cpu_memory_mib(self.spec.cpu_milli, self.node)
            mem = self.host_memory_mib or node_mib
            return [(Task("request", self.spec.cpu_milli, mem), None)]
        models = svc._allowed_models(self)
        if self.spec.kind == "whole":
            return [(Task("request", self.cpu_milli, self.host_memory_mib, self.spec.gpu_count, FULL, tuple(models)), None)]
        out: list[tuple[Task, Device | None]] = []
        if self.spec.gpu_memory_bytes:
            for model, device in sorted(models.items(), key=lambda kv: kv[1].memory_bytes or 0):
                milli = math.ceil(self.spec.gpu_memory_bytes * FULL / (device.memory_bytes or 1))
                if milli < FULL:
                    out.append((Task("request", self.cpu_milli, self.host_memory_mib, 1, milli, (model,)), device))
            return out
        return [(Task("request", self.cpu_milli, self.host_memory_mib, 1, self.spec.gpu_milli, tuple(models)), None)]


class SliceService:
    """`wb.slices`: request, list, get, renew, release leases; plan MIG layouts."""

    def __init__(
        self,
        wb: Any,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        usage_probe: UsageProbe | None = None,
    ) -> None:
        self.wb = wb
        self._clock = clock
        self._sleep = sleep
        self._probe = usage_probe
        self._inventory: Inventory | None = None
        self._state: ClusterState | None = None
        self._policies: dict[str, Any] = {}
        self._cpu_samples: dict[str, float] = {}
        self._lock_file: Any = None
        self._connection: Connection | None = None  # the allocation's held connection
        # Threads of one process (a Jupyter server, a Panel app) share the service: they queue
        # here first, since a `flock` on one open file does not exclude its own process.
        self._thread_lock = threading.Lock()

    def close(self) -> None:
        with self._thread_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Txn]:
        """An allocation transaction (`store.locked()`), queued behind a file lock on SQLite.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so under contention most of
        the time goes to sleeping; a blocking `flock` hands the lock over as soon as it is free.
        The `BEGIN IMMEDIATE` inside stays the guarantee (other writers need not take the file lock).
        """
        store = self.wb.store
        path = store.url.split("///", 1)[-1] if store.is_sqlite else ""
        if path == ":memory:":  # one connection per thread: nothing to hold, nobody else to queue
            with store.allocation_connection() as connection, store.locked(connection), _Txn(connection) as txn:
                yield txn
            return
        with self._thread_lock:
            if path and self._lock_file is None:
                try:
                    self._lock_file = open(path + ".alloc.lock", "a")  # noqa: SIM115 - held for the service's life
                except OSError as exc:
                    raise store.read_only_error("cannot allocate", exc.strerror or str(exc)) from None
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                if self._connection is None or self._connection.invalidated or self._connection.closed:
                    self._connection = store.allocation_connection()
                with store.locked(self._connection) as connection, _Txn(connection) as txn:
                    yield txn
            finally:
                if self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _allocation(self) -> Iterator[Session]:
        """An allocation transaction through the ORM (the paths that are not hot)."""
        with self._locked() as txn:
            yield txn.session

    def __repr__(self) -> str:
        return f"<SliceService user={self.wb.user!r} devices={self.inventory!r}>"

    # -- capacity -----------------------------------------------------------------------------
    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = self.wb.devices()
            self._allowed: dict[tuple[Any, ...], dict[str, Device]] = {}
            self._node_index = {n.name: i for i, n in enumerate(self._inventory.nodes)}
            self._gpu_column = {d.key: j for n in self._inventory.nodes for j, d in enumerate(n.gpus)}
        return self._inventory

    def _base_state(self) -> ClusterState:
        """Free capacity with nothing leased. GPUs in MIG mode serve MIG profiles only."""
        if self._state is None:
            import numpy as np

            inv = self.inventory
            width = max([len(n.gpus) for n in inv.nodes] + [1])
            gpu = np.zeros((len(inv.nodes), width), dtype=np.int64)
            for i, node in enumerate(inv.nodes):
                for j, d in enumerate(node.gpus):
                    gpu[i, j] = 0 if d.mig else FULL
            models = [node.gpus[0].model if node.gpus else "cpu" for node in inv.nodes]
            self._state = ClusterState(
                [n.name for n in inv.nodes], models, [n.cpu_milli for n in inv.nodes], [n.memory_mib for n in inv.nodes], gpu
            )
        return self._state

    def _cpu_memory_mib(self, cpu_milli: int, node: str | None) -> int:
        """Host memory of a CPU slice: the node's memory in proportion to its cores."""
        nodes = [n for n in self.inventory.nodes if node is None or n.name == node] or list(self.inventory.nodes)
        share = min(n.memory_mib * cpu_milli // max(n.cpu_milli, 1) for n in nodes)
        return int(share)

    def _gpus(self) -> list[Device]:
        return [d for d in self.inventory.devices if d.kind == "gpu"]

    def _allowed_models(self, req: Request) -> dict[str, Device]:
        """GPU models (non-MIG devices) that satisfy the model and memory constraints, one device each."""
        key = (req.models, req.min_memory_bytes, req.node)
        if key not in self._allowed:
            self._allowed[key] = self._find_models(req)
        return self._allowed[key]

    def _find_models(self, req: Request) -> dict[str, Device]:
        wanted = {lookup(m).name for m in req.models}
        out: dict[str, Device] = {}
        for d in self._gpus():
            if d.mig or (req.node and d.node != req.node):
                continue
            if wanted and lookup(d.model).name not in wanted and d.model not in req.models:
                continue
            if req.min_memory_bytes and (d.memory_bytes or 0) < req.min_memory_bytes:
                continue
            out.setdefault(d.model, d)
        return out

    def _mig_devices(self, req: Request) -> list[Device]:
        wanted = {lookup(m).name for m in req.models}
        return [
            d for d in self._gpus()
            if d.mig and d.spec.mig_profile(req.spec.profile or "") is not None
            and (not wanted or d.spec.name in wanted)
            and (not req.min_memory_bytes or (d.spec.mig_profile(req.spec.profile or "").memory_bytes >= req.min_memory_bytes))  # type: ignore[union-attr]
        ]

    def _policy(self, name: str | None, task: Task, workload: Sequence[Task]) -> Any:
        """The placement policy for one decision. Fragmentation-aware policies measure against
        the requests currently held (plus this one): the service's own workload."""
        name = (name or self.wb.settings.policy or DEFAULT_POLICY).lower()
        if name.startswith("fgd"):
            return make_policy(name, workload=[task, *workload])
        if name not in self._policies:
            self._policies[name] = make_policy(name)
        return self._policies[name]

    def _quota(self, scope: str, name: str) -> dict[str, float]:
        quotas = self.wb.settings.quotas
        return dict(quotas.get(f"{scope}:{name}", quotas.get(f"{scope}:*", {})))

    # -- validation: requests that can never be met -------------------------------------------
    def check(self, spec: str | float) -> SliceSpec:
        """Parse `spec` and check it against this fleet as `request` does, leasing nothing.

        A job that names a slice this fleet can never grant (`1g.10gb` on a machine without a GPU)
        is refused when it is submitted, not 0.2 s later when it asks for the slice.
        """
        parsed = parse_spec(spec)
        self._validate(Request(parsed, cpu_milli=parsed.cpu_milli))
        return parsed

    def _validate(self, req: Request) -> None:
        inv = self.inventory
        kind = req.spec.kind
        if req.node is not None and req.node not in self._node_index:
            raise InvalidRequest(f"no node {req.node!r}; nodes: {', '.join(n.name for n in inv.nodes[:20])}")
        gpus = self._gpus()
        if kind == "cpu":
            cap = max(n.cpu_milli for n in inv.nodes if req.node in (None, n.name))
            if req.spec.cpu_milli > cap:
                raise InvalidRequest(f"{req.spec.text}: asks for {req.spec.cpu_milli / 1000:g} CPU cores; the most on one node is {cap / 1000:g}")
            return
        if not gpus:
            raise InvalidRequest(f"{req.spec.text}: this fleet ({inv.source}) has no GPU; valid kinds here: cpu (e.g. \"cpu\" or \"cpu:2\")")
        if kind == "mig":
            mig_models = sorted({d.spec.name for d in gpus if d.mig})
            if not mig_models:
                capable = sorted({d.model for d in gpus if d.mig_capable})
                models = sorted({d.model for d in gpus})
                if capable:
                    raise InvalidRequest(
                        f"{req.spec.profile}: the GPUs here ({', '.join(capable)}) are MIG-capable but MIG mode is off; "
                        "the workbench never changes a live GPU's mode; valid kinds here: whole, fraction"
                    )
                raise InvalidRequest(
                    f"{req.spec.profile} is not a MIG profile of {', '.join(models)} (no MIG); valid kinds here: whole, fraction"
                )
            if not self._mig_devices(Request(req.spec)):
                valid = sorted({p.name for d in gpus if d.mig for p in d.spec.mig_profiles})
                raise InvalidRequest(
                    f"{req.spec.profile!r} is not a MIG profile of {', '.join(mig_models)}; valid: {', '.join(valid)}"
                )
            if not self._mig_devices(req):
                raise InvalidRequest(f"{req.spec.profile}: no MIG GPU matches the constraints (models={list(req.models)}, min_memory_bytes={req.min_memory_bytes})")
            return
        models = self._allowed_models(req)
        if not models:
            plain = sorted({d.model for d in gpus if not d.mig})
            if not plain:
                raise InvalidRequest(
                    f"{req.spec.text}: every GPU here is in MIG mode ({', '.join(sorted({d.model for d in gpus}))}); "
                    "ask for a MIG profile such as " + ", ".join(p.name for p in gpus[0].spec.mig_profiles[:3])
                )
            raise InvalidRequest(
                f"{req.spec.text}: no GPU matches models={list(req.models)} min_memory_bytes={req.min_memory_bytes}; "
                f"GPU models here: {', '.join(plain)}"
            )
        if kind == "whole":
            most = max(sum(1 for d in n.gpus if d.model in models) for n in inv.nodes)
            if req.spec.gpu_count > most:
                raise InvalidRequest(f"{req.spec.text}: asks for {req.spec.gpu_count} GPUs on one node; the most any node has is {most}")
        if kind == "fraction" and req.spec.gpu_memory_bytes and not req.tasks(self):
            largest = max(models.values(), key=lambda d: d.memory_bytes or 0)
            raise InvalidRequest(
                f"{req.spec.text} of GPU memory is not less than a whole GPU here (largest: {largest.model}, "
                f"{(largest.memory_bytes or 0) / 1024**3:.0f} GiB); ask for \"gpu\" for a whole one"
            )

    # -- the public verbs ---------------------------------------------------------------------
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
        owner = check_name(owner or self.wb.user, "owner")
        if project is not None:
            check_name(project, "project")
        check_priority(priority)
        parsed = parse_spec(spec)
        host_mib = 0
        if memory_bytes is not None:
            host_mib = math.ceil(parse_size_bytes(memory_bytes, "memory_bytes") / MIB)
        if isinstance(min_memory_bytes, (str, int)):
            min_memory_bytes = parse_size_bytes(min_memory_bytes, "min_memory_bytes")
        if isinstance(models, str):
            models = [models]
        if policy is not None:
            make_policy(policy)  # unknown names fail now, with the valid ones
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidRequest(f"ttl_s={ttl_s} must be more than 0 seconds")
        cpu_milli = parsed.cpu_milli if parsed.kind == "cpu" else round((cpu_cores or 0) * 1000)
        req = Request(parsed, tuple(models or ()), min_memory_bytes, node, policy, cpu_milli, host_mib)
        self._validate(req)
        if req.spec.kind != "mig":
            req.tasks(self)  # worked out here, so the decision under the lock finds them ready
        ttl = float(ttl_s or self.wb.settings.lease_ttl_s)
        nothing_held = Book(self, [])  # does the quota allow this request at all?
        too_big = nothing_held.quota_block(owner, project or self.wb.settings.project, req.gpus, cpu_milli / 1000, host_mib * MIB)
        if too_big:
            raise InvalidRequest(too_big.replace("quota exceeded", "quota can never allow this request"))
        now = self._clock()
        lease_id = new_id("lease")
        # A plain record, not an ORM object: the common path writes it with one INSERT, and an
        # ORM instance's instrumented attributes cost more than the rest of building it.
        row = SimpleNamespace(**{
            **_EMPTY_LEASE, "id": lease_id, "owner": owner, "project": project or self.wb.settings.project,
            "kind": parsed.kind, "state": "queued", "device_keys": [], "profile": parsed.profile, "gpu_milli": 0,
            "cpu_milli": cpu_milli, "memory_bytes": 0, "priority": int(priority), "request": req.as_json(), "env": {},
            "ttl_s": ttl, "created_at": now, "heartbeat_at": now, "expires_at": now + dt.timedelta(seconds=ttl), "usage": {},
        })
        with self._locked() as txn:
            row = self._request_locked(txn, row, req, now, wait)
        lease = Lease.from_row(row, self)
        if lease.state == "queued":
            if on_queued is not None:
                on_queued(lease)
            lease = self._wait(lease, timeout_s)
        return lease

    def _request_locked(self, txn: _Txn, row: Any, req: Request, now: dt.datetime, wait: bool) -> Any:
        """Decide and record `row` (a new queued lease) holding the allocation lock: granted, or
        queued with its reason; `Conflict` (nothing written) when it must not wait. Returns the row
        as recorded."""
        text = req.spec.text
        held = [_HeldRow._make(r) for r in txn.run(_HELD_OR_QUEUED, now=now)]
        if not any(r.stale or r.state == "queued" for r in held):
            # Nobody waits and nothing expired: if it fits as things are, grant it at once.
            placement, _ = self._fit(Book(self, held), row, req)
            if placement is not None:
                self._grant(txn.connection, row, placement, now)
                txn.run(_INSERT_LEASE, **_columns(row))
                return row
        # Others wait, leases expired, or it does not fit now: it joins the queue, where requests
        # are decided in fair order and room can be made (idle reclaim, preemption).
        s = txn.session
        row = LeaseRow(**_columns(row))
        s.add(row)
        self._schedule(txn, now)
        if row.state != "active" and not wait:
            reason = row.reason or "cannot be placed now"
            raise Conflict(f"{text} cannot be granted now: {reason}", reason=reason)  # rolls it all back
        if row.state == "queued":
            self._event(s, row.id, "queued", {"reason": row.reason, "position": row.queue_position})
        return row

    def _wait(self, lease: Lease, timeout_s: float | None) -> Lease:
        start = time.monotonic()
        delay = 0.02
        observed = start
        while True:
            self._sleep(delay)
            delay = min(delay * 1.5, 0.5)
            now = self._clock()
            with self._locked() as txn:
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
                        self._expire(txn, now)
                        self._observe(s, now)
                    self._schedule(txn, now)
                gave_up = row.state == "queued" and timeout_s is not None and time.monotonic() - start >= timeout_s
                reason = row.reason
                if gave_up:
                    self._end(s, row, "released", now, f"gave up after waiting {timeout_s:g} s: {reason}")
                current = Lease.from_row(row, self)
            if gave_up:
                raise Conflict(f"{current.spec} not granted within {timeout_s:g} s: {reason}", reason=reason)
            if current.state != "queued":
                if current.state != "active":
                    raise Conflict(f"lease {current.id} ended while queued ({current.state}): {current.reason}")
                return current

    def get(self, lease_id: str) -> Lease:
        with self.wb.store.session() as s:
            row = s.get(LeaseRow, lease_id)
            if row is None:
                raise NotFound(f"no lease {lease_id!r}; see wb.slices.list()")
            return Lease.from_row(row, self, now=self._clock())

    def list(self, owner: str | None = None, all_users: bool = False, include_ended: bool = False) -> LeaseList:
        """Leases of `owner` (default: you), or everyone's with `all_users=True`; live and queued unless `include_ended`."""
        q = select(LeaseRow).order_by(LeaseRow.created_at)
        if not all_users:
            q = q.where(LeaseRow.owner == (owner or self.wb.user))
        if not include_ended:
            q = q.where(LeaseRow.state.in_((*LIVE_STATES, "queued")))
        now = self._clock()
        with self.wb.store.session() as s:
            return LeaseList(Lease.from_row(r, self, now=now) for r in s.scalars(q).all())

    def renew(self, lease_id: str) -> Lease:
        """Heartbeat: the lease now expires one TTL from now. Ended leases cannot be renewed."""
        now = self._clock()
        with self._allocation() as s:
            row = self._owned(s, lease_id, "renew")
            if row.state not in (*LIVE_STATES, "queued"):
                raise Conflict(f"lease {lease_id} is {row.state} ({row.reason or 'ended'}); request a new slice")
            if row.expires_at is not None and as_utc(row.expires_at) < now:
                self._end(s, row, "expired", now, "not renewed within its TTL")
                raise Conflict(f"lease {lease_id} expired at {as_utc(row.expires_at):%H:%M:%S} UTC before this renewal; request a new slice")
            row.heartbeat_at = now
            row.expires_at = now + dt.timedelta(seconds=row.ttl_s)
            return Lease.from_row(row, self)

    def keep_alive(self) -> KeepAlive:
        """The renewals of one open face (a dashboard tab): it renews the leases it shows while open."""
        return KeepAlive(self, self._clock)

    def release(self, lease_id: str) -> Lease:
        """Give the slice back. Idempotent: releasing an ended lease returns it unchanged."""
        now = self._clock()
        by = self.wb.user
        with self._locked() as txn:
            # The common case, one statement: the owner ends a lease that is still live.
            found = txn.run(_RELEASE_OWN, lease_id=lease_id, by_owner=by, ended_at=now)
            reason = None
            if not found:  # not theirs, ended already, or no such lease: find out which
                found = txn.run(_LEASE_BY_ID, lease_id=lease_id)
                row = _LeaseRecord._make(found[0]) if found else None
                self._check_owner(row, lease_id, "release")
                assert row is not None
                if row.state not in (*LIVE_STATES, "queued"):
                    return Lease.from_row(row, self)  # idempotent: the ended lease, unchanged
                reason = None if by == row.owner else f"released by {by}"
                found = txn.run(_RELEASE, lease_id=lease_id, ended_at=now, reason=reason)
            row = _LeaseRecord._make(found[0])
            self._event(txn.connection, lease_id, "released", {"reason": reason, "by": by})
            # Endpoints live as long as their lease: marked here, their processes ended below.
            stopped = mark_stopped(txn.connection, lease_id, f"its slice {lease_id} was released", now)
            self._schedule(txn, now, expire=False)  # expiry is checked by the next request
        if stopped:
            self.wb.endpoints.end_marked(stopped)
        return Lease.from_row(row, self)

    def sweep(self) -> dict[str, int]:
        """Expire leases past their TTL, check idle ones and grant what now fits; returns counts."""
        now = self._clock()
        with self._locked() as txn:
            expired = self._expire(txn, now)
            idle = self._observe(txn.session, now)
            granted = self._schedule(txn, now, expire=False)
        self.wb.endpoints.reap()  # endpoints of leases that ended (expired, preempted, ...)
        return {"expired": expired, "idle": idle, "granted": granted}

    def events(self, lease_id: str) -> list[dict[str, Any]]:
        """The recorded decisions about a lease (queued, granted, idle, reclaimed, preempted, ...)."""
        with self.wb.store.session() as s:
            rows = s.scalars(select(LeaseEventRow).where(LeaseEventRow.lease_id == lease_id).order_by(LeaseEventRow.id)).all()
            return [{"at": as_utc(r.at), "event": r.event, **(r.detail or {})} for r in rows]

    def plan_mig(self, model: str, profiles: Sequence[str], existing: Iterable[str] = ()) -> Any:
        """Plan MIG instances on one GPU of `model` beside `existing` (PROFILE@START). See `mig.plan_mig`."""
        from workbench.slices.mig import plan_mig

        return plan_mig(model, list(profiles), existing)

    # -- internals ----------------------------------------------------------------------------
    def _owned(self, s: Session, lease_id: str, verb: str) -> LeaseRow:
        row = s.get(LeaseRow, lease_id)
        self._check_owner(row, lease_id, verb)
        assert row is not None
        return row

    def _check_owner(self, row: Any, lease_id: str, verb: str) -> None:
        if row is None:
            raise NotFound(f"no lease {lease_id!r}; see wb.slices.list()")
        if row.owner != self.wb.user and not self.wb.is_admin():
            raise Forbidden(f"{self.wb.user} cannot {verb} lease {lease_id}: it belongs to {row.owner}")

    def _event(self, on: Session | Connection, lease_id: str, event: str, detail: dict[str, Any]) -> None:
        connection = on.connection() if isinstance(on, Session) else on
        _INSERT_EVENT.run(connection, {"lease_id": lease_id, "at": self._clock(), "event": event, "detail": _jsonable(detail)})

    def _end(self, s: Session, row: LeaseRow, state: str, now: dt.datetime, reason: str | None) -> None:
        row.state = state
        row.ended_at = now
        row.reason = reason
        row.queue_position = None
        self._event(s, row.id, state, {"reason": reason, "by": self.wb.user})

    def _expire(self, txn: _Txn, now: dt.datetime) -> int:
        ids = [r[0] for r in txn.run(_EXPIRED_IDS, now=now)]
        if not ids:
            return 0
        s = txn.session
        stale = s.scalars(select(LeaseRow).where(LeaseRow.id.in_(ids))).all()
        for row in stale:
            self._end(s, row, "expired", now, f"not renewed within its TTL of {row.ttl_s:g} s")
        return len(stale)

    def _schedule(self, txn: _Txn, now: dt.datetime, *, expire: bool = True) -> int:
        """Grant what fits among the queued requests, in fair order. Returns how many were granted."""
        if expire:
            self._expire(txn, now)
        if not txn.run(_ANY_QUEUED):
            return 0
        s = txn.session
        queued = s.scalars(select(LeaseRow).where(LeaseRow.state == "queued")).all()
        book = Book(self, [_BookRow._make(r) for r in txn.run(_LIVE)])
        order = sorted(queued, key=lambda r: (-r.priority, book.dominant_share(r.owner), as_utc(r.created_at), r.id))
        granted = 0
        position = 0
        for row in order:
            req = Request.from_json(row.request)
            placement, reason = self._admit(s, book, row, req, now)
            if placement is not None:
                self._grant(s, row, placement, now)
                book.add(row)
                granted += 1
                continue
            position += 1
            row.queue_position = position
            row.reason = reason
        return granted

    def _fit(self, book: Book, row: Any, req: Request) -> tuple[Placement | None, str | None]:
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

    def _admit(self, s: Session, book: Book, row: LeaseRow, req: Request, now: dt.datetime) -> tuple[Placement | None, str | None]:
        """Quotas, then placement, making room if allowed; the placement, or why not."""
        placement, reason = self._fit(book, row, req)
        if placement is not None or reason is not None:
            return placement, reason
        placement = self._make_room(s, book, row, req, now)
        return (placement, None) if placement is not None else (None, book.why_not(req))

    def _grant(self, on: Session | Connection, row: Any, p: Placement, now: dt.datetime) -> None:
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
        row.env = self._env(row, p)
        self._event(on, row.id, "granted", {"node": p.node, "devices": p.device_keys, "profile": p.profile, "start": p.mig_start})

    def _env(self, row: LeaseRow, p: Placement) -> dict[str, str]:
        env = {"WORKBENCH_SLICE_ID": row.id, "WORKBENCH_SLICE_KIND": row.kind}
        if row.kind == "cpu":
            cores = p.cpu_milli / 1000
            threads = str(max(1, math.floor(cores)))
            env.update(
                CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                OPENBLAS_NUM_THREADS=threads, WORKBENCH_SLICE_CPU_CORES=f"{cores:g}", JAX_PLATFORMS="cpu",
            )
            return env
        devices = [self.inventory.device(k) for k in p.device_keys]
        if row.kind == "mig":
            device = devices[0]
            instance = next((i for i in device.mig_instances if i.profile == p.profile and i.start == p.mig_start), None)
            env["CUDA_VISIBLE_DEVICES"] = instance.uuid if instance and instance.uuid else (device.uuid or str(device.index))
            env["WORKBENCH_SLICE_MIG"] = f"{p.profile}@{p.mig_start}"
        else:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(d.uuid or str(d.index) for d in devices)
        if row.kind == "fraction":
            fraction = p.memory_bytes / (devices[0].memory_bytes or 1) if devices[0].memory_bytes else p.gpu_milli / FULL
            text = f"{math.floor(min(fraction, p.gpu_milli / FULL) * 1000) / 1000:.3f}"
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = text
            env["WORKBENCH_SLICE_MEMORY_FRACTION"] = text
        if p.cpu_milli:
            threads = str(max(1, math.floor(p.cpu_milli / 1000)))
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, WORKBENCH_SLICE_CPU_CORES=f"{p.cpu_milli / 1000:g}")
        return env

    # -- making room: preemption and idle reclaim ---------------------------------------------
    def _make_room(self, s: Session, book: Book, row: LeaseRow, req: Request, now: dt.datetime) -> Placement | None:
        """Free capacity for `row` by reclaiming idle leases past their grace, else by preempting
        lower-priority leases that ran at least the minimum runtime. Takes the fewest victims."""
        grace = self.wb.settings.idle_grace_s
        min_runtime = self.wb.settings.preempt_min_runtime_s
        reclaimable = [
            r for r in book.rows
            if r.state == "idle" and r.idle_at is not None and (now - as_utc(r.idle_at)).total_seconds() >= grace
        ]
        victims = self._victims(book, req, reclaimable)
        how = "reclaimed"
        if victims is None:
            preemptible = [
                r for r in book.rows
                if r.priority < row.priority and r.granted_at is not None
                and (now - as_utc(r.granted_at)).total_seconds() >= min_runtime
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
                self._end(s, victim, "reclaimed", now, reason)
                self._event(s, victim.id, "reclaim-evidence", {"for": row.id, "evidence": evidence})
            else:
                reason = (
                    f"preempted by {row.owner}'s lease {row.id} (priority {row.priority} > {victim.priority}) "
                    f"after running {(now - as_utc(victim.granted_at)).total_seconds():.0f} s "
                    f"(minimum {min_runtime:g} s)"
                )
                self._end(s, victim, "preempted", now, reason)
        return book.place(req)

    def _victims(self, book: Book, req: Request, candidates: Sequence[LeaseRow]) -> list[LeaseRow] | None:
        """The smallest set of `candidates` on one node whose removal lets `req` fit, or None."""
        by_node: dict[str, list[LeaseRow]] = {}
        for r in candidates:
            by_node.setdefault(r.node or "", []).append(r)
        best: list[LeaseRow] | None = None
        for rows in by_node.values():
            rows = sorted(rows, key=lambda r: (r.priority, -(as_utc(r.granted_at) or utcnow()).timestamp()))
            taken: list[LeaseRow] = []
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

    # -- idle detection -----------------------------------------------------------------------
    def _observe(self, s: Session, now: dt.datetime) -> int:
        """Sample device use of live leases; mark idle ones (telling their owner) with evidence."""
        idle_after = self.wb.settings.idle_after_s
        grace = self.wb.settings.idle_grace_s
        marked = 0
        for row in s.scalars(select(LeaseRow).where(LeaseRow.state.in_(LIVE_STATES))).all():
            sample = (self._probe or _default_probe)(self, Lease.from_row(row, self))
            if sample is None:
                continue  # no way to tell (a declared fleet): never called idle
            usage = dict(row.usage or {})
            usage.update({k: v for k, v in sample.items() if k != "busy"}, sampled_at=now.isoformat())
            row.usage = usage
            if sample.get("busy"):
                row.last_active_at = now
                if row.state == "idle":
                    row.state, row.idle_at, row.reason = "active", None, None
                    self._event(s, row.id, "active", {"evidence": _jsonable(sample)})
                continue
            since = as_utc(row.last_active_at or row.granted_at) or now
            if row.state == "active" and (now - since).total_seconds() >= idle_after:
                row.state = "idle"
                row.idle_at = now
                row.reason = (
                    f"idle: no device use since {since:%Y-%m-%d %H:%M:%S} UTC; it will be reclaimed "
                    f"{grace:g} s from now if others are waiting"
                )
                self._event(s, row.id, "idle", {"since": since, "evidence": _jsonable(sample)})
                marked += 1
        return marked

    # -- offers: what can be requested on each device (workbench.slices.offers) ----------------
    def offers(self) -> list[DeviceOffers]:
        """Every kind of device in this fleet with what can be requested on it; the faces build
        their choices from this, so they offer exactly what `request` grants."""
        return fleet_offers(self.inventory)


_BOOK_COLUMNS = (
    LeaseRow.id, LeaseRow.owner, LeaseRow.project, LeaseRow.kind, LeaseRow.state, LeaseRow.node, LeaseRow.device_keys,
    LeaseRow.profile, LeaseRow.mig_start, LeaseRow.gpu_milli, LeaseRow.cpu_milli, LeaseRow.memory_bytes,
    # The one number the book needs from the usage JSON, extracted by the database (decoding
    # every lease's usage sample cost more than the rest of the row).
    LeaseRow.usage["_host_memory_mib"].as_integer().label("host_memory_mib"),
)
# What making room also weighs: who may be preempted or reclaimed (read on the queue's path).
_ROOM_COLUMNS = (LeaseRow.priority, LeaseRow.granted_at, LeaseRow.idle_at)


def _state_is(*states: str) -> Any:
    """`state IN (...)` spelt as ORs (SQLite plans it as IN): the driver path takes no expanding lists."""
    return or_(*(LeaseRow.state == state for state in states))


# Statements of the hot path, built once (building a statement costs more than running it) and
# run on the driver (`DriverStatement`): every process waits on them behind the allocation lock.
_TABLE = LeaseRow.__table__
_HELD_OR_QUEUED = DriverStatement(
    select(*_BOOK_COLUMNS, (LeaseRow.expires_at < bindparam("now")).label("stale")).where(_state_is(*LIVE_STATES, "queued"))
)
_LIVE = DriverStatement(select(*_BOOK_COLUMNS, *_ROOM_COLUMNS).where(_state_is(*LIVE_STATES)))
_ANY_QUEUED = DriverStatement(select(LeaseRow.id).where(LeaseRow.state == "queued").limit(1))
_EXPIRED_IDS = DriverStatement(
    select(LeaseRow.id).where(_state_is(*LIVE_STATES, "queued"), LeaseRow.expires_at < bindparam("now"))
)
_LEASE_BY_ID = DriverStatement(select(_TABLE).where(_TABLE.c.id == bindparam("lease_id")))
_RELEASE = DriverStatement(
    update(_TABLE).where(_TABLE.c.id == bindparam("lease_id"))
    .values(state="released", ended_at=bindparam("ended_at"), reason=bindparam("reason"), queue_position=None)
    .returning(*_TABLE.c)
)
_RELEASE_OWN = DriverStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("lease_id"), _TABLE.c.owner == bindparam("by_owner"), _state_is(*LIVE_STATES, "queued"))
    .values(state="released", ended_at=bindparam("ended_at"), reason=None, queue_position=None)
    .returning(*_TABLE.c)
)
_INSERT_LEASE = DriverStatement(insert(_TABLE), column_keys=[c.key for c in _TABLE.columns])
_INSERT_EVENT = DriverStatement(insert(LeaseEventRow.__table__), column_keys=["lease_id", "at", "event", "detail"])
_EMPTY_LEASE: dict[str, Any] = {column.key: None for column in _TABLE.columns}
# Rows as the statements above return them: attribute access, as on an ORM row, for the book.
_HeldRow = namedtuple("_HeldRow", [c.key for c in _BOOK_COLUMNS] + ["stale"])  # type: ignore[misc]
_BookRow = namedtuple("_BookRow", [c.key for c in (*_BOOK_COLUMNS, *_ROOM_COLUMNS)])  # type: ignore[misc]
_LeaseRecord = namedtuple("_LeaseRecord", [c.key for c in _TABLE.columns])  # type: ignore[misc]


def _columns(row: LeaseRow) -> dict[str, Any]:
    """Every column of a new lease row (an INSERT with the same keys each time caches well)."""
    values = {c.key: getattr(row, c.key) for c in _TABLE.columns}
    for key in ("device_keys", "request", "env", "usage"):
        if values[key] is None:
            values[key] = [] if key == "device_keys" else {}
    return values


def _host_mib(row: LeaseRow) -> int:
    """Host memory a lease holds, in MiB: a CPU slice's memory, or what a GPU slice asked beside its GPU."""
    return row.memory_bytes // MIB if row.kind == "cpu" else int(row.host_memory_mib or 0)


def _task_of(row: LeaseRow) -> Task:
    """A held lease as an engine task (what the fragmentation-aware policy weighs)."""
    count = len(row.device_keys or []) if row.kind in ("whole", "fraction") else 0
    return Task(row.id, row.cpu_milli, _host_mib(row), count, row.gpu_milli if count else 0)


def _default_probe(svc: SliceService, lease: Lease) -> dict[str, Any] | None:
    """Device use of a lease: NVML utilization and memory for GPUs, the slice's processes' CPU time
    for CPU slices. None when there is no way to tell (a declared fleet)."""
    if lease.kind == "cpu":
        return _cpu_time_probe(svc, lease)
    inv = svc.wb.devices(refresh=True)
    if inv.source != "nvml":
        return None
    samples = []
    for key in lease.device_keys:
        d = inv.device(key)
        samples.append({"device": key, "utilization_pct": d.utilization_pct, "memory_used_bytes": d.memory_used_bytes})
    busy = any((x["utilization_pct"] or 0) > 0 for x in samples)
    return {"busy": busy, "devices": samples}


def _cpu_time_probe(svc: SliceService, lease: Lease) -> dict[str, Any]:
    import psutil

    total = 0.0
    pids = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("WORKBENCH_SLICE_ID") != lease.id:
                continue
            times = proc.cpu_times()
            total += times.user + times.system
            pids.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    before = svc._cpu_samples.get(lease.id)
    svc._cpu_samples[lease.id] = total
    busy = before is not None and total - before > 0.01
    return {"busy": busy, "cpu_time_s": round(total, 3), "pids": pids}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
