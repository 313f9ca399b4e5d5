"""The placement engine: cluster state in, decision out. No database, no clock, no I/O.

A `ClusterState` holds, per node, free CPU (milli-cores), free memory (MiB) and the free share of
each GPU (thousandths; 1000 = an idle GPU, 0 = taken or absent). A `Task` asks for CPU and memory
on one node plus either `num_gpu` idle GPUs there or, when `num_gpu == 1 and gpu_milli < 1000`,
that share of one GPU — the Alibaba v2023 model that the replay measures policies on, and the one
the slice service uses for whole, fraction and CPU slices.

A policy looks at the feasible nodes and picks one node and its GPUs. Aggregates that every
policy needs (idle GPUs per node, the largest free share per node) are kept up to date when a
decision is applied, so one decision costs a handful of vectorized operations over the nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.errors import InvalidRequest

FULL = 1000  # milli-GPUs in one GPU
_STATE_IDS = itertools.count()


@dataclass(frozen=True, slots=True)
class Task:
    """What one placement needs. `models` (any-of) restricts the GPU model; empty means any."""

    name: str
    cpu_milli: int = 0
    memory_mib: int = 0
    num_gpu: int = 0
    gpu_milli: int = 0
    models: tuple[str, ...] = ()

    @property
    def shares_gpu(self) -> bool:
        return self.num_gpu == 1 and 0 < self.gpu_milli < FULL

    @property
    def gpu_demand_milli(self) -> int:
        """GPU capacity the task takes, in thousandths of a GPU."""
        return self.gpu_milli if self.shares_gpu else FULL * self.num_gpu


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a task goes: node index and name, the GPU indices on that node (none for CPU-only)."""

    node: int
    node_name: str
    gpus: tuple[int, ...]
    gpu_milli: int  # per GPU: FULL for whole GPUs, the share for a shared GPU, 0 for none


class ClusterState:
    """Free capacity of every node. Mutated only by `apply` (and `release`)."""

    def __init__(
        self,
        names: Sequence[str],
        models: Sequence[str],
        cpu_milli: Sequence[int],
        memory_mib: Sequence[int],
        gpu_free: np.ndarray,
    ) -> None:
        self.names = list(names)
        self.models = np.asarray(models, dtype=object)
        self.cpu_cap = np.asarray(cpu_milli, dtype=np.int64).copy()
        self.mem_cap = np.asarray(memory_mib, dtype=np.int64).copy()
        self.cpu_free = self.cpu_cap.copy()
        self.mem_free = self.mem_cap.copy()
        self.gpu_free = np.asarray(gpu_free, dtype=np.int64).copy()
        if self.gpu_free.ndim != 2 or len(self.gpu_free) != len(self.names):
            raise ValueError("gpu_free must be a (nodes, max GPUs per node) array")
        self.gpu_cap = self.gpu_free.copy()
        self.gpu_count = (self.gpu_cap > 0).sum(axis=1)
        self._model_masks: dict[tuple[str, ...], np.ndarray] = {}
        self.version = np.zeros(len(self.names), dtype=np.int64)  # bumped when a node changes
        self.uid = next(_STATE_IDS)  # policies key their caches on this (ids of dead objects recur)
        self._refresh_all()

    @classmethod
    def from_nodes(cls, nodes: Sequence[tuple[str, str, int, int, int]]) -> ClusterState:
        """From `(name, model, cpu_milli, memory_mib, gpus)` rows (an Alibaba node list)."""
        width = max([g for *_, g in nodes] + [1])
        gpu = np.zeros((len(nodes), width), dtype=np.int64)
        for i, (*_, g) in enumerate(nodes):
            gpu[i, :g] = FULL
        return cls([n[0] for n in nodes], [n[1] for n in nodes], [n[2] for n in nodes], [n[3] for n in nodes], gpu)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_gpus(self) -> int:
        return int(self.gpu_count.sum())

    @property
    def allocated_gpu_milli(self) -> int:
        return int((self.gpu_cap - self.gpu_free).sum())

    def copy(self) -> ClusterState:
        other = object.__new__(ClusterState)
        other.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()})
        other._model_masks = self._model_masks
        other.uid = next(_STATE_IDS)
        return other

    def with_free(self, cpu_free: Sequence[int], mem_free: Sequence[int], gpu_free: Sequence[Sequence[int]]) -> ClusterState:
        """A copy with these free amounts (same shapes), e.g. summed from a database's leases."""
        other = object.__new__(ClusterState)
        other.__dict__.update(self.__dict__)
        other.cpu_free = np.array(cpu_free, dtype=np.int64)
        other.mem_free = np.array(mem_free, dtype=np.int64)
        other.gpu_free = np.array(gpu_free, dtype=np.int64).reshape(self.gpu_free.shape)
        other.version = self.version.copy()
        other.uid = next(_STATE_IDS)
        other._refresh_all()
        return other

    # -- aggregates ---------------------------------------------------------------------------
    def _refresh_all(self) -> None:
        self.full_count = (self.gpu_free >= FULL).sum(axis=1)
        self.free_sum = self.gpu_free.sum(axis=1)
        self.max_free = self.gpu_free.max(axis=1) if self.gpu_free.shape[1] else np.zeros(len(self), np.int64)

    def _refresh(self, n: int) -> None:
        row = self.gpu_free[n]
        self.full_count[n] = int((row >= FULL).sum())
        self.free_sum[n] = int(row.sum())
        self.max_free[n] = int(row.max()) if len(row) else 0
        self.version[n] += 1

    def model_mask(self, models: tuple[str, ...]) -> np.ndarray | None:
        if not models:
            return None
        mask = self._model_masks.get(models)
        if mask is None:
            wanted = {m.lower() for m in models}
            mask = np.array([str(m).lower() in wanted for m in self.models], dtype=bool)
            self._model_masks[models] = mask
        return mask

    # -- feasibility and bookkeeping ----------------------------------------------------------
    def feasible(self, task: Task) -> np.ndarray:
        """Boolean mask of the nodes where `task` fits now."""
        ok = (self.cpu_free >= task.cpu_milli) & (self.mem_free >= task.memory_mib)
        if task.shares_gpu:
            ok &= self.max_free >= task.gpu_milli
        elif task.num_gpu:
            ok &= self.full_count >= task.num_gpu
        mask = self.model_mask(task.models)
        if mask is not None and task.num_gpu:
            ok &= mask
        return ok

    def apply(self, task: Task, node: int, gpus: Sequence[int]) -> Decision:
        milli = task.gpu_milli if task.shares_gpu else (FULL if task.num_gpu else 0)
        self.cpu_free[node] -= task.cpu_milli
        self.mem_free[node] -= task.memory_mib
        for g in gpus:
            self.gpu_free[node, g] -= milli
        self._refresh(node)
        return Decision(node, self.names[node], tuple(int(g) for g in gpus), milli)

    def release(self, task: Task, decision: Decision) -> None:
        self.cpu_free[decision.node] += task.cpu_milli
        self.mem_free[decision.node] += task.memory_mib
        for g in decision.gpus:
            self.gpu_free[decision.node, g] += decision.gpu_milli
        self._refresh(decision.node)

    def why_not(self, task: Task) -> str:
        """A sentence saying why `task` fits nowhere (for queue reasons and error messages)."""
        mask = self.model_mask(task.models)
        nodes = np.ones(len(self), bool) if mask is None or not task.num_gpu else mask
        if not nodes.any():
            return f"no node has a GPU of model {' or '.join(task.models)}"
        if task.num_gpu and not task.shares_gpu and (self.gpu_count[nodes] < task.num_gpu).all():
            return f"no node has {task.num_gpu} GPUs (the most on one node is {int(self.gpu_count[nodes].max())})"
        if task.cpu_milli and (self.cpu_cap[nodes] < task.cpu_milli).all():
            return f"no node has {task.cpu_milli / 1000:g} CPU cores (the most is {self.cpu_cap[nodes].max() / 1000:g})"
        if task.memory_mib and (self.mem_cap[nodes] < task.memory_mib).all():
            return f"no node has {task.memory_mib} MiB of memory (the most is {int(self.mem_cap[nodes].max())} MiB)"
        what = []
        if task.shares_gpu:
            what.append(f"{task.gpu_milli / FULL:g} of a GPU")
        elif task.num_gpu:
            what.append(f"{task.num_gpu} idle GPU(s)")
        if task.cpu_milli:
            what.append(f"{task.cpu_milli / 1000:g} CPU cores")
        if task.memory_mib:
            what.append(f"{task.memory_mib} MiB memory")
        return "busy: no node has " + " and ".join(what) + " free together right now"


def _pick_gpus(state: ClusterState, task: Task, node: int, tightest: bool) -> tuple[int, ...]:
    row = state.gpu_free[node]
    if task.shares_gpu:
        fits = np.flatnonzero(row >= task.gpu_milli)
        if tightest:
            return (int(fits[np.argmin(row[fits])]),)
        return (int(fits[0]),)
    if task.num_gpu:
        return tuple(int(g) for g in np.flatnonzero(row >= FULL)[: task.num_gpu])
    return ()


class Policy:
    """Chooses a node (and its GPUs) among the feasible ones; `None` when nothing fits."""

    name = "policy"

    def choose(self, state: ClusterState, task: Task) -> tuple[int, tuple[int, ...]] | None:
        raise NotImplementedError

    def place(self, state: ClusterState, task: Task) -> Decision | None:
        """Choose and apply: the state afterwards holds the task."""
        choice = self.choose(state, task)
        if choice is None:
            return None
        return state.apply(task, *choice)


class FirstFit(Policy):
    """The first node (in the fleet's order) where the task fits; its first GPUs that fit."""

    name = "first-fit"

    def choose(self, state: ClusterState, task: Task) -> tuple[int, tuple[int, ...]] | None:
        ok = state.feasible(task)
        n = int(ok.argmax())
        if not ok[n]:
            return None
        return n, _pick_gpus(state, task, n, tightest=False)


class BestFit(Policy):
    """The node left with the least free capacity: ½·CPU left + ½·GPU left, each divided by the
    largest node's capacity (the classic best-fit of the FGD paper's simulator); within the node,
    the tightest GPU that fits.
    """

    name = "best-fit"

    def __init__(self) -> None:
        self._norm: tuple[ClusterState, float, float] | None = None

    def choose(self, state: ClusterState, task: Task) -> tuple[int, tuple[int, ...]] | None:
        ok = state.feasible(task)
        if not ok.any():
            return None
        if self._norm is None or self._norm[0] is not state:
            self._norm = (state, 0.5 / max(int(state.cpu_cap.max()), 1), 0.5 / max(int(state.gpu_cap.sum(axis=1).max()), 1))
        _, cpu_w, gpu_w = self._norm
        score = state.cpu_free * cpu_w + state.free_sum * gpu_w  # the task's own share is the same everywhere
        score[~ok] = np.inf
        n = int(score.argmin())
        return n, _pick_gpus(state, task, n, tightest=True)


class RandomFit(Policy):
    """A uniformly random feasible node (seeded, so a replay is repeatable)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, state: ClusterState, task: Task) -> tuple[int, tuple[int, ...]] | None:
        candidates = np.flatnonzero(state.feasible(task))
        if not len(candidates):
            return None
        n = int(candidates[self.rng.integers(len(candidates))])
        row = state.gpu_free[n]
        if task.shares_gpu:
            fits = np.flatnonzero(row >= task.gpu_milli)
            return n, (int(fits[self.rng.integers(len(fits))]),)
        if task.num_gpu:
            free = np.flatnonzero(row >= FULL)
            return n, tuple(int(g) for g in np.sort(self.rng.choice(free, task.num_gpu, replace=False)))
        return n, ()


POLICY_NAMES = ("first-fit", "best-fit", "random", "fgd", "fgd-cpu", "fgd-mix")
DEFAULT_POLICY = "fgd-mix"


def make_policy(name: str | None, *, seed: int = 0, workload: Sequence[Task] | None = None) -> Policy:
    """A policy by name; `workload` (the typical tasks) feeds the fragmentation-aware ones."""
    name = (name or DEFAULT_POLICY).lower()
    if name == "first-fit":
        return FirstFit()
    if name == "best-fit":
        return BestFit()
    if name == "random":
        return RandomFit(seed)
    if name in ("fgd", "fgd-cpu", "fgd-mix"):
        from workbench.slices.fgd import FragmentationGradientDescent

        return FragmentationGradientDescent(workload or (), variant=name)
    raise InvalidRequest(f"unknown placement policy {name!r}; valid: {', '.join(POLICY_NAMES)}")
