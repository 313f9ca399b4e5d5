"""Allocator benchmark: placement quality and speed on the Alibaba trace; committed allocations/s.

    python benchmarks/allocator.py [--nodes CSV] [--pods CSV] [--until 1.0] [--seed 0]
                                   [--processes 8] [--seconds 10]
    python benchmarks/allocator.py --table [--seed 7] [--jobs 2]    # only the family table

`--table` replays every task list of the FGD paper's family in data/cluster/ (the default trace
and its 22 variants: CPU-task, GPU-sharing, GPU-type and multi-GPU shares) with best-fit, fgd, the
old default fgd-cpu and the default policy, `--jobs` replays at a time in separate processes (each
one is a whole replay, single-threaded: its decisions/s are its own), and prints each one's
unallocated GPU share, the ratio to best-fit's on the same list, decisions per CPU-second, and
whether the default meets the targets (≤ 0.6 × best-fit; never worse than the best of best-fit
and fgd).

Part 1 replays the trace (the FGD paper's method, `workbench slices replay`) with every policy
and prints each one's unallocated GPU share and placement decisions per second, with the ratio of
each to best-fit measured in the same run. Part 2 starts N processes that request and release
slices through one SQLite database (the real `SliceService`, `BEGIN IMMEDIATE` for every
allocation) and prints committed allocations per second, then checks that no GPU was ever held
beyond its capacity. Its same-run baselines: the same loop in one process alone (what the lock's
serialization costs), and bare SQLite write transactions from as many processes (the database's
own ceiling, nothing decided).
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


TABLE_POLICIES = ("best-fit", "fgd", "fgd-cpu")


def _replay_one(job: tuple[str, str, str, float, int]) -> tuple[str, str, float, float, float]:
    from workbench.slices.replay import replay

    nodes, pods, policy, until, seed = job
    r = replay(nodes, pods, policy, until=until, seed=seed)
    return Path(pods).name, policy, r.unallocated_gpu_share, r.decisions_per_cpu_second, r.decisions_per_second


def family_table(nodes: Path, until: float, seed: int, jobs: int) -> None:
    """Every task list of the family × the policies; see the module docstring."""
    from workbench.slices.placement import DEFAULT_POLICY

    lists = sorted((ROOT / "data" / "cluster").glob("openb_pod_list_*"), key=lambda p: (p.name != "openb_pod_list_default.csv", p.name))
    policies = tuple(dict.fromkeys((*TABLE_POLICIES, DEFAULT_POLICY)))
    work = [(str(nodes), str(p), name, until, seed) for p in lists for name in policies]
    began = time.perf_counter()
    with mp.get_context("fork").Pool(jobs) as pool:
        rows = pool.map(_replay_one, work, chunksize=1)
    got = {(pods, policy): (share, per_cpu_s, per_s) for pods, policy, share, per_cpu_s, per_s in rows}
    print(f"Family table: {len(lists)} task lists x {len(policies)} policies on {nodes.name}, until={until}, seed={seed}, "
          f"{jobs} replays at a time; {time.perf_counter() - began:.0f} s")
    print(f"{'task list':34} {'best-fit':>9} " + " ".join(f"{p + ' ×':>10}" for p in policies[1:])
          + f" {'default dec/CPU-s':>18} {'≤0.6×':>6} {'≤best':>6}")
    misses: list[str] = []
    slowest = float("inf")
    for p in lists:
        base = got[(p.name, "best-fit")][0]
        ratio = {name: got[(p.name, name)][0] / base if base else float("nan") for name in policies}
        best_other = min(1.0, ratio["fgd"])
        mine = ratio[DEFAULT_POLICY]
        speed = got[(p.name, DEFAULT_POLICY)][1]
        slowest = min(slowest, speed)
        ok_ratio, ok_best = mine <= 0.6, mine <= best_other + 1e-9
        if not (ok_ratio and ok_best):
            misses.append(p.name.removeprefix("openb_pod_list_"))
        print(f"{p.name.removeprefix('openb_pod_list_'):34} {base:9.4f} " + " ".join(f"{ratio[n]:10.3f}" for n in policies[1:])
              + f" {speed:18,.0f} {'yes' if ok_ratio else 'NO':>6} {'yes' if ok_best else 'NO':>6}")
    print(f"(× = unallocated GPU share / best-fit's on the same list, same run; default = {DEFAULT_POLICY}; "
          f"slowest default: {slowest:,.0f} decisions per CPU-second)")
    print(f"default misses a target on: {', '.join(misses) if misses else 'none'}")


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


def _bare_worker(path: str, seed: int, seconds: float, start_at: float, queue: mp.Queue) -> None:
    """The floor: a write transaction per operation on the same kind of database, nothing decided.

    Same discipline as the service (a blocking file lock, then BEGIN IMMEDIATE, WAL, synchronous
    NORMAL), one INSERT or DELETE of a lease-sized row per transaction, through the stdlib driver."""
    import fcntl
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous=NORMAL")
    lock = open(path + ".alloc.lock", "a")  # noqa: SIM115 - closed with the process
    held: list[int] = []
    ops = 0
    payload = "x" * 600
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    while time.time() < deadline:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn.execute("BEGIN IMMEDIATE")
        if len(held) >= 4:
            conn.execute("DELETE FROM leases WHERE id = ?", (held.pop(0),))
        else:
            held.append(conn.execute("INSERT INTO leases (owner, body) VALUES (?, ?)", (f"p{seed}", payload)).lastrowid)
        conn.execute("COMMIT")
        fcntl.flock(lock, fcntl.LOCK_UN)
        ops += 1
    queue.put(ops)


def bare_writes(processes: int, seconds: float) -> float:
    """Write transactions per second that N processes get from SQLite alone (the baseline)."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bare.db")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE leases (id INTEGER PRIMARY KEY, owner TEXT, body TEXT)")
        conn.close()
        ctx = mp.get_context("fork")
        queue: mp.Queue = ctx.Queue()
        start_at = time.time() + 1.0
        procs = [ctx.Process(target=_bare_worker, args=(path, i, seconds, start_at, queue)) for i in range(processes)]
        for p in procs:
            p.start()
        ops = sum(queue.get(timeout=seconds + 60) for _ in procs)
        for p in procs:
            p.join()
    return ops / seconds


def commits_part(processes: int, seconds: float) -> None:
    single = _commits(1, seconds / 2)
    _commits(processes, seconds, single)


def _commits(processes: int, seconds: float, single: float | None = None) -> float:
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
        if single is None:
            return granted / seconds
        bare = bare_writes(processes, seconds)
        ops = (granted + refused) + granted  # requests answered, and the releases of what was granted
        print(f"\nCommitted allocations through SQLite, {processes} processes, {seconds:g} s (plus as many releases):")
        print(f"  {granted / seconds:,.0f} allocations/s  ({granted} granted, {refused} refused because the fleet was full)")
        print(f"  same run, one process alone: {single:,.0f} allocations/s; {processes} processes get "
              f"{granted / seconds / single:.3f} x that (the allocation lock serializes them)")
        print(f"  same run, bare SQLite: {bare:,.0f} write transactions/s from {processes} processes (nothing decided); "
              f"the service's {ops / seconds:,.0f} transactions/s are {ops / seconds / bare:.3f} x that")
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
        return granted / seconds


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
    parser.add_argument("--table", action="store_true", help="only the family table (every task list x policies)")
    parser.add_argument("--jobs", type=int, default=2, help="replays at a time for --table (processes)")
    args = parser.parse_args(argv)
    if args.table:
        family_table(args.nodes, args.until, args.seed, args.jobs)
        return
    if not args.skip_replay:
        policies_part(args.nodes, args.pods, args.until, args.seed)
    if not args.skip_commits:
        commits_part(args.processes, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
