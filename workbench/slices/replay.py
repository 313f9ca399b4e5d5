"""Replay a cluster trace through a placement policy, the way "Beware of Fragmentation" measures.

Tasks arrive in trace order (`creation_time`; the file's order when there is none), re-sampled
with the seed when the list runs out (a re-sampled task keeps its name with `#k` appended),
nothing departs, until the GPUs asked for by arrived tasks reach `until` × the cluster's GPUs.
The headline is the share of GPU capacity left unallocated at that point.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import FleetFileError, InvalidRequest
from workbench.slices.placement import (
    DEFAULT_POLICY,
    FULL,
    ClusterState,
    Decision,
    Task,
    make_policy,
)

POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


@dataclass
class ReplayResult:
    policy: str
    nodes: int
    gpus: int
    tasks_arrived: int
    tasks_placed: int
    tasks_failed: int
    arrived_gpu: float
    allocated_gpu: float
    unallocated_gpu_share: float
    decisions_per_second: float
    decisions_per_cpu_second: float  # the same per second of this process's CPU time (robust on a busy machine)
    until: float
    seed: int
    seconds: float
    assignments: list[tuple[Task, Decision]] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("assignments")
        return data


def _int(path: Path, line: int, column: str, raw: str | None) -> int:
    try:
        return int(float(raw or 0))
    except ValueError:
        raise FleetFileError(f"{path}, line {line}: {column} = {raw!r} is not a number") from None


def _open_text(path: Path) -> io.TextIOBase:
    """A CSV file as text; `.gz` files (how the FGD repository's task-list variants ship) are read through gzip."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def load_nodes(path: str | Path) -> ClusterState:
    """An Alibaba v2023 node list (`sn, cpu_milli, memory_mib, gpu, model`) as a fresh cluster state."""
    path = Path(path)
    if not path.is_file():
        raise FleetFileError(f"{path}: no such node list")
    rows: list[tuple[str, str, int, int, int]] = []
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in NODE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise FleetFileError(f"{path}: missing column(s) {', '.join(missing)}; a node list has {', '.join(NODE_COLUMNS)}")
        for line, r in enumerate(reader, start=2):
            rows.append((r["sn"], (r["model"] or "").strip(), _int(path, line, "cpu_milli", r["cpu_milli"]),
                         _int(path, line, "memory_mib", r["memory_mib"]), _int(path, line, "gpu", r["gpu"])))
    if not rows:
        raise FleetFileError(f"{path}: no nodes")
    return ClusterState.from_nodes(rows)


def load_tasks(path: str | Path) -> list[Task]:
    """Tasks in arrival order: by `creation_time` when the file has it (stable), else file order."""
    path = Path(path)
    if not path.is_file():
        raise FleetFileError(f"{path}: no such task list")
    tasks: list[tuple[float, int, Task]] = []
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [c for c in POD_COLUMNS if c not in fields]
        if missing:
            raise FleetFileError(f"{path}: missing column(s) {', '.join(missing)}; a task list has at least {', '.join(POD_COLUMNS)}")
        timed = "creation_time" in fields
        for line, r in enumerate(reader, start=2):
            spec = (r.get("gpu_spec") or "").strip()
            num_gpu = _int(path, line, "num_gpu", r["num_gpu"])
            gpu_milli = _int(path, line, "gpu_milli", r["gpu_milli"])
            if num_gpu and not (num_gpu == 1 and gpu_milli < FULL):
                gpu_milli = FULL
            task = Task(
                name=r["name"], cpu_milli=_int(path, line, "cpu_milli", r["cpu_milli"]),
                memory_mib=_int(path, line, "memory_mib", r["memory_mib"]), num_gpu=num_gpu,
                gpu_milli=gpu_milli if num_gpu else 0,
                models=tuple(m for m in spec.split("|") if m) if spec else (),
            )
            when = float(r["creation_time"] or 0) if timed else 0.0
            tasks.append((when, line, task))
    if not tasks:
        raise FleetFileError(f"{path}: no tasks")
    tasks.sort(key=lambda t: (t[0], t[1]))
    return [t for *_, t in tasks]


def arrivals(tasks: Sequence[Task], seed: int) -> Iterator[Task]:
    """The trace in order, then re-sampled (uniformly, with the seed) for as long as asked."""
    yield from tasks
    rng = np.random.default_rng(seed)
    times: dict[str, int] = {}
    while True:
        for i in rng.integers(0, len(tasks), size=1024):
            t = tasks[int(i)]
            k = times[t.name] = times.get(t.name, 0) + 1
            yield Task(f"{t.name}#{k}", t.cpu_milli, t.memory_mib, t.num_gpu, t.gpu_milli, t.models)


def replay(
    nodes: str | Path | ClusterState,
    pods: str | Path | Sequence[Task],
    policy: str | None = None,
    *,
    until: float = 1.0,
    seed: int = 0,
    keep_assignments: bool = False,
) -> ReplayResult:
    """Run the arrival process against a fresh cluster and report what got allocated."""
    if not until > 0:
        raise InvalidRequest(f"--until {until} must be more than 0 (1.0 = arrived GPU demand equals the cluster's GPUs)")
    state = load_nodes(nodes) if isinstance(nodes, (str, Path)) else nodes.copy()
    tasks = load_tasks(pods) if isinstance(pods, (str, Path)) else list(pods)
    name = (policy or DEFAULT_POLICY).lower()
    engine = make_policy(name, seed=seed, workload=tasks)
    target = until * state.total_gpus * FULL
    arrived_milli = 0
    placed = failed = 0
    kept: list[tuple[Task, Decision]] = []
    place = engine.place
    started = time.perf_counter()
    started_cpu = time.process_time()
    stream = arrivals(tasks, seed)
    while arrived_milli < target:
        task = next(stream)
        arrived_milli += task.gpu_demand_milli
        decision = place(state, task)
        if decision is None:
            failed += 1
            continue
        placed += 1
        if keep_assignments:
            kept.append((task, decision))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - started_cpu
    gpus = state.total_gpus
    allocated = state.allocated_gpu_milli / FULL
    arrived = placed + failed
    return ReplayResult(
        policy=engine.name, nodes=len(state), gpus=gpus, tasks_arrived=arrived, tasks_placed=placed,
        tasks_failed=failed, arrived_gpu=arrived_milli / FULL, allocated_gpu=allocated,
        unallocated_gpu_share=1 - allocated / gpus if gpus else 0.0,
        decisions_per_second=arrived / seconds if seconds > 0 else float("inf"),
        decisions_per_cpu_second=arrived / cpu_seconds if cpu_seconds > 0 else float("inf"),
        until=until, seed=seed, seconds=seconds, assignments=kept,
    )


def write_assignments(path: str | Path, result: ReplayResult) -> None:
    """One row per placed task: `name, node, gpu_indices` (`;`-separated), `gpu_milli, cpu_milli, memory_mib`."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "node", "gpu_indices", "gpu_milli", "cpu_milli", "memory_mib"])
        for task, d in result.assignments:
            w.writerow([task.name, d.node_name, ";".join(map(str, d.gpus)), d.gpu_milli, task.cpu_milli, task.memory_mib])
