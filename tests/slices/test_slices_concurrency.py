"""Many processes hammer one database with random requests and releases: nothing is double-booked.

The check replays every grant and end in commit order (the lease events' autoincrement ids, which
the allocation lock serializes) and verifies that no GPU, MIG memory slice or CPU was ever held
beyond its capacity — not only at the end, but at every moment.
"""

from __future__ import annotations

import multiprocessing as mp
import random
from pathlib import Path
from typing import Any

import pytest

FLEET = """
[[nodes]]
name = "gpu"
count = 2
gpus = 2
model = "A100-80GB"
cpus = 8
memory_gib = 64

[[nodes]]
name = "mig"
gpus = 1
model = "H100-80GB"
cpus = 8
memory_gib = 64
mig = true
"""
SPECS = ["gpu", "gpu:2", 0.25, 0.5, "20GiB", "1g.10gb", "2g.20gb", "3g.40gb", "cpu", "cpu:2"]


def _worker(home: str, fleet: str, url: str | None, seed: int, ops: int, queue: Any) -> None:
    from workbench import Workbench
    from workbench.errors import Conflict

    rng = random.Random(seed)
    # No minimum runtime: higher priorities preempt at once, so preemption races too.
    wb = Workbench(home=home, fleet=fleet, user=f"u{seed % 3}", database_url=url, lease_ttl_s=600, preempt_min_runtime_s=0)
    held: list[str] = []
    granted = refused = 0
    try:
        for _ in range(ops):
            if held and rng.random() < 0.45:
                wb.slices.release(held.pop(rng.randrange(len(held))))  # idempotent if it was preempted
                continue
            try:
                queue_up = rng.random() < 0.15  # some wait in the queue for others' releases
                lease = wb.slices.request(rng.choice(SPECS), wait=queue_up, timeout_s=0.3, priority=rng.randint(0, 2))
                held.append(lease.id)
                granted += 1
            except Conflict:
                refused += 1
        queue.put((granted, refused, None))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put((granted, refused, repr(exc)))
    finally:
        wb.close()


def check_books(wb: Any) -> dict[str, int]:
    """Replay grants and ends in commit order; assert capacity is never exceeded."""
    from sqlalchemy import select

    from workbench.store.models.slices import LeaseEventRow, LeaseRow

    inv = wb.devices()
    with wb.store.session() as s:
        leases = {r.id: r for r in s.scalars(select(LeaseRow)).all()}
        events = s.scalars(select(LeaseEventRow).order_by(LeaseEventRow.id)).all()
    gpu: dict[str, int] = {}
    mig: dict[str, list[tuple[int, int]]] = {}
    cpu: dict[str, int] = {}
    live: set[str] = set()
    checked = 0
    for ev in events:
        row = leases[ev.lease_id]
        sign = 0
        if ev.event == "granted":
            assert ev.lease_id not in live
            live.add(ev.lease_id)
            sign = 1
        elif ev.event in ("released", "expired", "preempted", "reclaimed") and ev.lease_id in live:
            live.remove(ev.lease_id)
            sign = -1
        if not sign:
            continue
        cpu[row.node] = cpu.get(row.node, 0) + sign * row.cpu_milli
        assert cpu[row.node] <= inv.node(row.node).cpu_milli, f"CPU of {row.node} double-booked"
        if row.kind in ("whole", "fraction"):
            for key in row.device_keys:
                gpu[key] = gpu.get(key, 0) + sign * row.gpu_milli
                assert gpu[key] <= 1000, f"{key} double-booked"
        elif row.kind == "mig":
            profile = inv.device(row.device_keys[0]).spec.mig_profile(row.profile)
            span = (row.mig_start, row.mig_start + profile.memory_slices)
            spans = mig.setdefault(row.device_keys[0], [])
            if sign > 0:
                assert all(span[1] <= a or b <= span[0] for a, b in spans), f"MIG slices of {row.device_keys[0]} double-booked"
                spans.append(span)
            else:
                spans.remove(span)
        checked += 1
    still = {r.id for r in leases.values() if r.state in ("active", "idle")}
    assert still == live
    preempted = sum(1 for ev in events if ev.event == "preempted")
    return {"events": checked, "live": len(live), "preempted": preempted}


def hammer(tmp_path: Path, url: str | None = None, processes: int = 6, ops: int = 40) -> dict[str, int]:
    from workbench import Workbench

    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET)
    home = tmp_path / "home"
    wb = Workbench(home=home, fleet=fleet, database_url=url)
    _ = wb.store  # create the schema once, before the workers race
    wb.close()
    # Fresh interpreters, not forks: the test process has threads (other tests' servers and job
    # monitors) that may hold a lock inside SQLite at the moment of a fork, and a forked child
    # waits for it forever.
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(home), str(fleet), url, seed, ops, queue)) for seed in range(processes)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [err for *_, err in results if err]
    assert not errors, errors
    granted = sum(g for g, _, _ in results)
    refused = sum(r for _, r, _ in results)
    assert granted > 20 and refused > 0  # the fleet was really contended
    wb = Workbench(home=home, fleet=fleet, database_url=url)
    try:
        books = check_books(wb)
    finally:
        wb.close()
    assert books["events"] >= granted
    return books


def test_no_double_booking_under_many_processes(tmp_path: Path) -> None:
    books = hammer(tmp_path)
    assert books["preempted"] > 0  # preemption raced with requests and releases too


@pytest.mark.requires_postgres
def test_no_double_booking_on_postgres(tmp_path: Path, pg_db: str) -> None:
    hammer(tmp_path, pg_db, processes=4, ops=30)


def test_the_book_check_catches_double_booking(tmp_path: Path) -> None:
    """The checker itself must fail on a double-booked GPU (else the tests above prove nothing)."""
    from workbench import Workbench
    from workbench.store.models.slices import LeaseEventRow, LeaseRow

    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET)
    wb = Workbench(home=tmp_path / "home", fleet=fleet)
    try:
        with wb.store.session() as s:
            for i, milli in enumerate((600, 600)):
                s.add(LeaseRow(id=f"l{i}", owner="x", project="p", kind="fraction", state="active", node="gpu-0",
                               device_keys=["gpu-0/0"], gpu_milli=milli, cpu_milli=0, memory_bytes=0, priority=0))
                s.add(LeaseEventRow(lease_id=f"l{i}", event="granted", detail={}))
        with pytest.raises(AssertionError, match="gpu-0/0 double-booked"):
            check_books(wb)
    finally:
        wb.close()
