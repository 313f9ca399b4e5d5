"""Allocator benchmark: placement quality and speed on the Alibaba trace; committed allocations/s.

    python benchmarks/allocator.py [--nodes CSV] [--pods CSV] [--until 1.0] [--seed 0]
                                   [--processes 8] [--seconds 10]

Part 1 replays the trace (the FGD paper's method, `workbench slices replay`) with every policy
and prints each one's unallocated GPU share and placement decisions per second, with the ratio of
each to best-fit measured in the same run. Part 2 starts N processes that request and release
slices through one SQLite database (the real `SliceService`, `BEGIN IMMEDIATE` for every
allocation) and prints committed allocations per second, then checks that no GPU was ever held
beyond its capacity.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEET = """
[[nodes]]
name = "a100"
count = 8
gpus = 8
model = "A100-80GB"
cpus = 128
memory_gib = 1024
"""
SPECS = ["gpu", 0.25, 0.5, "cpu", "gpu:2", "20GiB"]


def policies_part(nodes: Path, pods: Path, until: float, seed: int) -> None:
    from workbench.slices.placement import DEFAULT_POLICY, POLICY_NAMES
    from workbench.slices.replay import replay

    results = {name: replay(nodes, pods, name, until=until, seed=seed) for name in POLICY_NAMES}
    base = results["best-fit"]
    print(f"Replay of {pods.name} on {base.nodes} nodes / {base.gpus} GPUs, until={until}, seed={seed} (default policy: {DEFAULT_POLICY})")
    print(f"{'policy':10} {'unallocated':>12} {'GPUs':>8} {'vs best-fit':>12} {'decisions/s':>12} {'vs best-fit':>12} "
          f"{'per CPU-s':>10} {'vs best-fit':>12} {'failed':>7}")
    for name, r in results.items():
        print(
            f"{name:10} {r.unallocated_gpu_share:12.4f} {r.gpus - r.allocated_gpu:8.1f} "
            f"{r.unallocated_gpu_share / base.unallocated_gpu_share:12.3f} {r.decisions_per_second:12,.0f} "
            f"{r.decisions_per_second / base.decisions_per_second:12.3f} {r.decisions_per_cpu_second:10,.0f} "
            f"{r.decisions_per_cpu_second / base.decisions_per_cpu_second:12.3f} {r.tasks_failed:7d}"
        )
    print("(decisions/s is wall-clock; per CPU-s divides by this process's CPU time, which other load on the machine does not inflate)")


def _worker(home: str, fleet: str, seed: int, seconds: float, start_at: float, queue: mp.Queue) -> None:
    from workbench import Workbench
    from workbench.errors import Conflict

    wb = Workbench(home=home, fleet=fleet, user=f"bench{seed}", lease_ttl_s=3600)
    svc = wb.slices
    _ = svc.inventory  # load the fleet before the clock starts
    rng = random.Random(seed)
    held: list[str] = []
    granted = refused = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    while time.time() < deadline:
        if len(held) >= 4 or (held and rng.random() < 0.5):
            svc.release(held.pop(0))
            continue
        try:
            held.append(svc.request(rng.choice(SPECS), wait=False).id)
            granted += 1
        except Conflict:
            refused += 1
    queue.put((granted, refused))
    wb.close()


def commits_part(processes: int, seconds: float) -> None:
    from sqlalchemy import select

    from workbench import Workbench
    from workbench.store.models.slices import LeaseRow

    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet.toml"
        fleet.write_text(FLEET)
        home = Path(tmp) / "home"
        wb = Workbench(home=home, fleet=fleet)
        _ = wb.store  # create the schema before the workers start
        wb.close()
        ctx = mp.get_context("fork")
        queue: mp.Queue = ctx.Queue()
        start_at = time.time() + 3.0
        procs = [ctx.Process(target=_worker, args=(str(home), str(fleet), i, seconds, start_at, queue)) for i in range(processes)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join()
        granted = sum(g for g, _ in results)
        refused = sum(r for _, r in results)
        print(f"\nCommitted allocations through SQLite, {processes} processes, {seconds:g} s (plus as many releases):")
        print(f"  {granted / seconds:,.0f} allocations/s  ({granted} granted, {refused} refused because the fleet was full)")
        wb = Workbench(home=home, fleet=fleet)
        with wb.store.session() as s:
            live = s.scalars(select(LeaseRow).where(LeaseRow.state == "active")).all()
        per_gpu: dict[str, int] = {}
        for row in live:
            if row.kind in ("whole", "fraction"):
                for key in row.device_keys:
                    per_gpu[key] = per_gpu.get(key, 0) + row.gpu_milli
        over = {k: v for k, v in per_gpu.items() if v > 1000}
        print(f"  books: {len(live)} live leases, {'no GPU over capacity' if not over else f'DOUBLE-BOOKED: {over}'}")
        wb.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=Path, default=ROOT / "data" / "cluster" / "openb_node_list_gpu_node.csv")
    parser.add_argument("--pods", type=Path, default=ROOT / "data" / "cluster" / "openb_pod_list_default.csv")
    parser.add_argument("--until", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--skip-commits", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_replay:
        policies_part(args.nodes, args.pods, args.until, args.seed)
    if not args.skip_commits:
        commits_part(args.processes, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
