"""Capacity accounting: what the live leases hold, and whether a request fits beside them.

A `Book` is built inside the allocation transaction from the leases that hold capacity, adds and
removes leases as the scheduler grants and preempts, and answers the two questions a decision
asks: does a quota block this request, and where would it go (`Placement`). It reads the fleet
through `Capacity` and never touches the database, so a decision is a pure function of the rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from workbench.inventory.devices import Device
from workbench.slices.capacity import Capacity
from workbench.slices.mig import plan_mig
from workbench.slices.placement import FULL, ClusterState, Task
from workbench.slices.types import GPU_SHARE_KINDS, LeaseCore

if TYPE_CHECKING:
    from workbench.slices.request import Request

MIB = 1024**2


class Held(LeaseCore, Protocol):
    """What the book reads of a lease that holds capacity (`sql.HeldRow`, `sql.BookRow`, `LeaseRow`)."""

    @property
    def host_memory_mib(self) -> int | None: ...


class Preemptible(Held, Protocol):
    """A held lease as making room weighs it (`sql.BookRow`, `LeaseRow`): who may be preempted or reclaimed."""

    @property
    def priority(self) -> int: ...
    @property
    def granted_at(self) -> dt.datetime | None: ...
    @property
    def idle_at(self) -> dt.datetime | None: ...


class Owned(Protocol):
    """Whom a request is charged to, and the CPU it asks for (what a quota check reads of its lease)."""

    @property
    def owner(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def cpu_milli(self) -> int: ...


R = TypeVar("R", bound=Held)
Totals = tuple[dict[str, list[tuple[str, int]]], dict[tuple[str, str], list[float]]]


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


_QUOTA_UNITS = {"gpus": "GPUs", "cpus": "CPU cores", "memory_gib": "GiB of host memory"}


class Book(Generic[R]):
    """The capacity left, given the live leases: an engine state plus MIG occupancy and usage totals."""

    def __init__(self, capacity: Capacity, live: Iterable[R]) -> None:
        self.capacity = capacity
        self.inv = capacity.inventory
        self.rows: list[R] = list(live)
        self._workload: list[Task] | None = None
        # MIG occupancy and per-user/project totals, summed when first asked for: a request for a
        # whole GPU or a fraction, with no quota set, never needs them.
        self._sums: Totals | None = None
        # Sum what the leases hold in Python integers and write the arrays once: numpy's per-item
        # updates cost more than the whole sum, and this runs inside the allocation lock.
        base = capacity.base_state()
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

    def _totals(self) -> Totals:
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
    def _held_by(self, row: Held) -> tuple[int | None, int, list[int]]:
        """Where a lease holds capacity: its node's index (None off the fleet), the host memory
        in MiB and the GPU columns it takes `gpu_milli` of (MIG instances are booked apart)."""
        capacity = self.capacity
        columns: list[int] = []
        if row.kind in GPU_SHARE_KINDS:
            columns = [c for c in (capacity.gpu_column.get(key) for key in row.device_keys or []) if c is not None]
        return capacity.node_index.get(row.node or ""), _host_mib(row), columns

    def _apply(self, row: Held, sign: int) -> None:
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

    def _account(self, row: Held, sign: int, host_mib: int) -> None:
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

    def add(self, row: R) -> None:
        self._apply(row, +1)
        self.rows.append(row)

    def remove(self, row: R) -> None:
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
            limits = self.capacity.quota(scope, name)
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
        for task, model in req.tasks(self.capacity):
            choice = self.capacity.policy(req.policy, task, self.workload).choose(state, task) if state.feasible(task).any() else None
            if choice is None:
                continue
            n, gpus = choice
            return self._placement(req, task, n, gpus, model)
        return None

    def _only(self, node: str) -> ClusterState:
        """The state with every node but `node` full (a request pinned to one node)."""
        n = self.capacity.node_index[node]
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
        best: tuple[int, Device, int] | None = None
        for device in self.capacity.mig_devices(req):
            if req.node and device.node != req.node:
                continue
            n = self.capacity.node_index[device.node]
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
            used_slices = sum(_memory_slices(device, p) for p, _ in used)
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
            devices = self.capacity.mig_devices(req)
            return f"busy: no free room for {req.spec.profile} on the {len(devices)} MIG GPU(s) that offer it"
        tasks = req.tasks(self.capacity)
        return self.state.why_not(tasks[0][0]) if tasks else "no device matches this request"


def _memory_slices(device: Device, profile: str) -> int:
    """Memory slices a MIG instance of `profile` takes on `device` (0 for a profile it does not know)."""
    found = device.spec.mig_profile(profile)
    return found.memory_slices if found is not None else 0


def _host_mib(row: Held) -> int:
    """Host memory a lease holds, in MiB: a CPU slice's memory, or what a GPU slice asked beside its GPU."""
    return row.memory_bytes // MIB if row.kind == "cpu" else int(row.host_memory_mib or 0)


def _task_of(row: Held) -> Task:
    """A held lease as an engine task (what the fragmentation-aware policy weighs)."""
    count = len(row.device_keys or []) if row.kind in GPU_SHARE_KINDS else 0
    return Task(row.id, row.cpu_milli, _host_mib(row), count, row.gpu_milli if count else 0)
