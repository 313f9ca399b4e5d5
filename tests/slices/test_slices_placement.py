"""The pure placement engine, the policies and the trace replay (the contract the CLI keeps)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from workbench.errors import InvalidRequest
from workbench.slices.placement import DEFAULT_POLICY, POLICY_NAMES, ClusterState, Task, make_policy
from workbench.slices.replay import load_tasks, replay

NODES = Path(__file__).resolve().parents[2] / "data" / "cluster" / "openb_node_list_gpu_node.csv"
PODS = Path(__file__).resolve().parents[2] / "data" / "cluster" / "openb_pod_list_default.csv"
CLUSTER = PODS.parent
FAMILY = sorted(CLUSTER.glob("openb_pod_list_*.csv.gz"))


def _small() -> ClusterState:
    return ClusterState.from_nodes([("a", "T4", 8000, 32768, 2), ("b", "V100M16", 32000, 65536, 4), ("c", "", 16000, 16384, 0)])


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_respects_capacity(name: str) -> None:
    state = _small()
    policy = make_policy(name, seed=1, workload=[Task("w", 1000, 1024, 1, 500)])
    rng = np.random.default_rng(3)
    placed = []
    for i in range(300):
        kind = rng.integers(0, 4)
        task = Task(f"t{i}", int(rng.integers(0, 4)) * 1000, int(rng.integers(0, 8)) * 1024,
                    *((0, 0), (1, int(rng.integers(1, 1000))), (1, 1000), (2, 1000))[kind])
        decision = policy.place(state, task)
        if decision is not None:
            placed.append((task, decision))
    assert placed
    assert (state.cpu_free >= 0).all() and (state.mem_free >= 0).all() and (state.gpu_free >= 0).all()
    used_gpu = np.zeros_like(state.gpu_free)
    for task, d in placed:
        assert len(d.gpus) == (task.num_gpu if task.num_gpu else 0)
        for g in d.gpus:
            used_gpu[d.node, g] += d.gpu_milli
    assert (used_gpu == state.gpu_cap - state.gpu_free).all()
    assert not state.feasible(Task("huge", 10**9)).any()


def test_policies_choose_as_named() -> None:
    ff, bf = make_policy("first-fit"), make_policy("best-fit")
    state = _small()
    share = Task("s", 1000, 1024, 1, 300)
    assert ff.choose(state, share) == (0, (0,))
    state.apply(Task("x", 0, 0, 1, 600), 0, (1,))
    assert ff.choose(state, share) == (0, (0,))
    assert bf.choose(state, share) == (0, (1,))  # the tightest GPU on the fullest node
    state.apply(Task("y", 7500, 0), 0, ())  # node a is out of CPU
    assert bf.choose(state, share) == (1, (0,))
    assert make_policy("first-fit").choose(state, Task("gpu3", 0, 0, 3, 1000)) == (1, (0, 1, 2))
    assert ff.choose(state, Task("m", 0, 0, 1, 1000, ("P100",))) is None
    assert "no node has a GPU of model P100" in state.why_not(Task("m", 0, 0, 1, 1000, ("P100",)))
    assert "no node has 5 GPUs" in state.why_not(Task("m", 0, 0, 5, 1000))
    with pytest.raises(InvalidRequest, match="valid: first-fit"):
        make_policy("worst-fit")


def test_fgd_keeps_cpu_off_gpu_nodes() -> None:
    """A CPU-only task goes where it strands no GPU, which best-fit does not care about."""
    state = ClusterState.from_nodes([("gpu", "G2", 8000, 65536, 2), ("cpu", "", 64000, 65536, 0)])
    state.apply(Task("held", 0, 0, 1, 1000), 0, (0,))
    workload = [Task("w", 4000, 1024, 1, 1000)] * 3 + [Task("c", 6000, 1024)]
    task = Task("c", 6000, 1024)
    assert make_policy("fgd", workload=workload).choose(state, task)[0] == 1
    assert make_policy("fgd-cpu", workload=workload).choose(state, task)[0] == 1
    assert make_policy("best-fit").choose(state, task)[0] == 0


def test_replay_is_deterministic_and_counts_add_up() -> None:
    a = replay(NODES, PODS, "fgd-cpu", until=0.3, seed=2)
    b = replay(NODES, PODS, "fgd-cpu", until=0.3, seed=2)
    timing = {"decisions_per_second": 0, "decisions_per_cpu_second": 0, "seconds": 0}
    assert a.as_json() | timing == b.as_json() | timing
    assert a.tasks_arrived == a.tasks_placed + a.tasks_failed
    assert a.arrived_gpu >= 0.3 * a.gpus and a.gpus == 6212 and a.nodes == 1213
    assert a.unallocated_gpu_share == pytest.approx(1 - a.allocated_gpu / a.gpus)


def test_resampling_names_and_order() -> None:
    from workbench.slices.replay import arrivals

    tasks = load_tasks(PODS)
    assert tasks[0].name == "openb-pod-0000"
    stream = arrivals(tasks[:3], seed=0)
    names = [next(stream).name for _ in range(9)]
    assert names[:3] == [t.name for t in tasks[:3]]
    assert all("#" in n for n in names[3:])


def test_replay_cli_contract(tmp_path: Path) -> None:
    from workbench.cli import app

    out = tmp_path / "assign.csv"
    result = CliRunner().invoke(app, ["slices", "replay", "--nodes", str(NODES), "--pods", str(PODS),
                                      "--policy", "best-fit", "--until", "0.2", "--seed", "0", "--assignments", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("policy", "nodes", "gpus", "tasks_arrived", "tasks_placed", "tasks_failed", "arrived_gpu",
                "allocated_gpu", "unallocated_gpu_share", "decisions_per_second"):
        assert key in data
    assert data["policy"] == "best-fit"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == data["tasks_placed"]
    assert list(rows[0]) == ["name", "node", "gpu_indices", "gpu_milli", "cpu_milli", "memory_mib"]
    # The assignments reproduce the allocated GPUs exactly.
    total = sum(int(r["gpu_milli"]) * len([g for g in r["gpu_indices"].split(";") if g]) for r in rows)
    assert total / 1000 == pytest.approx(data["allocated_gpu"])


def test_replay_minimal_task_list(tmp_path: Path) -> None:
    """A list with only name, cpu_milli, memory_mib, num_gpu, gpu_milli: file order, no model constraint."""
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\nbig,1000,1024,8,1000\nsmall,1000,1024,1,250\n")
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,8,G2\nn1,64000,262144,8,G2\n")
    r = replay(nodes, pods, "first-fit", until=1.0, keep_assignments=True)
    assert [t.name for t, _ in r.assignments][:2] == ["big", "small"]
    assert r.arrived_gpu >= 16
    bad = tmp_path / "bad.csv"
    bad.write_text("name,cpu\nx,1\n")
    with pytest.raises(Exception, match="missing column"):
        replay(nodes, bad)


def test_plan_mig_cli() -> None:
    from workbench.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["slices", "plan-mig", "--gpu", "NVIDIA H100 80GB HBM3", "3g.40gb", "2g.20gb", "--existing", "1g.10gb@6", "--json"])
    assert ok.exit_code == 0, ok.output
    data: dict[str, Any] = json.loads(ok.stdout)
    assert data["feasible"] is True
    assert sorted(p["profile"] for p in data["placements"]) == ["2g.20gb", "3g.40gb"]
    no = runner.invoke(app, ["slices", "plan-mig", "--gpu", "A100-40GB", "4g.20gb", "4g.20gb", "--json"])
    assert json.loads(no.stdout)["feasible"] is False and json.loads(no.stdout)["reason"]


@pytest.mark.parametrize("name", ["fgd", "fgd-cpu", "fgd-mix"])
def test_fgd_caches_do_not_change_decisions(name: str) -> None:
    """The per-node, per-type caches must give exactly what scoring from scratch gives."""
    tasks = load_tasks(CLUSTER / "openb_pod_list_gpuspec33.csv.gz")[:400]  # with GPU-model constraints
    nodes = [(f"n{i}", m, cpu, mem, g) for i, (m, cpu, mem, g) in enumerate(
        [("G2", 96000, 393216, 8), ("T4", 104000, 524288, 2), ("P100", 64000, 262144, 2), ("G3", 128000, 786432, 8)] * 20)]
    cached_state = ClusterState.from_nodes(nodes)
    fresh_state = ClusterState.from_nodes(nodes)
    cached = make_policy(name, workload=tasks)
    for task in tasks:
        a = cached.place(cached_state, task)
        b = make_policy(name, workload=tasks).place(fresh_state, task)
        assert (a and (a.node, a.gpus)) == (b and (b.node, b.gpus)), task


def test_the_family_of_task_lists_loads() -> None:
    """The FGD repository's 22 variants, gzip'd: every family is there and reads as a task list."""
    assert {re.sub(r"\d+\.csv\.gz$", "", p.name.removeprefix("openb_pod_list_")) for p in FAMILY} == {"cpu", "gpushare", "gpuspec", "multigpu"}
    assert len(FAMILY) == 22
    for path in FAMILY:
        tasks = load_tasks(path)
        assert len(tasks) > 5000 and all(t.num_gpu <= 8 for t in tasks)
    constrained = [t for t in load_tasks(CLUSTER / "openb_pod_list_gpuspec33.csv.gz") if t.models]
    assert constrained and all(set(t.models) <= {"G2", "G3", "T4", "P100", "V100M16", "V100M32", "A10"} for t in constrained)


def _mixed_fleet() -> ClusterState:
    return ClusterState.from_nodes([(f"n{i}", m, cpu, mem, g) for i, (m, cpu, mem, g) in enumerate(
        [("G2", 96000, 393216, 8), ("T4", 104000, 524288, 2), ("P100", 16000, 122880, 2), ("V100M32", 96000, 786432, 8)] * 6)])


def test_the_default_keeps_gpu_models_for_the_tasks_held_to_them() -> None:
    """Tasks that may run anywhere leave the model that a share of the workload is held to."""
    state = ClusterState.from_nodes([("v100", "V100M32", 96000, 786432, 8), ("g2", "G2", 96000, 786432, 8)])
    workload = [Task("anywhere", 8000, 32768, 1, 1000)] * 5 + [Task("held", 8000, 32768, 1, 1000, ("V100M32",))] * 5
    anywhere = Task("t", 8000, 32768, 1, 1000)
    assert make_policy("fgd-mix", workload=workload).choose(state, anywhere)[0] == 1
    assert make_policy("fgd-mix", workload=workload).choose(state, workload[-1])[0] == 0


def test_the_default_respects_models_and_capacity_and_is_deterministic() -> None:
    tasks = load_tasks(CLUSTER / "openb_pod_list_gpuspec33.csv.gz")[:1500]
    runs = []
    for _ in range(2):
        state = _mixed_fleet()
        policy = make_policy("fgd-mix", workload=tasks)
        decisions = []
        for task in tasks:
            before = (state.cpu_free.copy(), state.gpu_free.copy())
            choice = policy.choose(state, task)
            assert np.array_equal(before[0], state.cpu_free) and np.array_equal(before[1], state.gpu_free)  # a pure decision
            if choice is None:
                assert not state.feasible(task).any()
                decisions.append(None)
                continue
            node, gpus = choice
            if task.models and task.num_gpu:
                assert state.models[node] in task.models
            decisions.append(state.apply(task, node, gpus))
        assert (state.cpu_free >= 0).all() and (state.mem_free >= 0).all() and (state.gpu_free >= 0).all()
        runs.append([(d.node, d.gpus) if d else None for d in decisions])
    assert runs[0] == runs[1] and any(runs[0]) and None in runs[0]


def test_replay_of_a_variant_with_the_default_is_repeatable() -> None:
    path = CLUSTER / "openb_pod_list_multigpu50.csv.gz"
    a, b = (replay(NODES, path, None, until=0.3, seed=7) for _ in range(2))
    timing = {"decisions_per_second": 0, "decisions_per_cpu_second": 0, "seconds": 0}
    assert a.policy == DEFAULT_POLICY == "fgd-mix" and a.as_json() | timing == b.as_json() | timing
