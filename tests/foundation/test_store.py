"""The store on SQLite and on a real PostgreSQL server started by the tests."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from workbench.errors import StoreUnavailable
from workbench.store import Store, mask_url
from workbench.store.models import DeviceRow, JobRow, LeaseRow, new_id

TABLES = {"devices", "leases", "lease_events", "jobs", "job_events", "profiles", "kernel_results", "alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.requires_postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wb.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    if request.param == "postgres":
        from workbench.store.models import Base

        Base.metadata.drop_all(s.engine)
        with s.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    s.close()


def test_schema_is_created_by_migration(store: Store) -> None:
    assert TABLES <= set(inspect(store.engine).get_table_names())
    assert store.revision()  # at a known alembic revision
    Store(store.url).close()  # a second open migrates nothing and fails nothing


def test_large_integers_round_trip(store: Store) -> None:
    with store.session() as s:
        s.add(DeviceRow(key="n/0", node="n", index=0, kind="gpu", model="H200-141GB", memory_bytes=141 * 10**9, source="fleet"))
    with store.session() as s:
        assert s.get(DeviceRow, "n/0").memory_bytes == 141 * 10**9


def test_failed_unit_of_work_leaves_nothing_half_written(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(LeaseRow(id="lease-a", owner="ada", kind="cpu", state="active", cpu_milli=1000))
            s.flush()
            raise RuntimeError("allocation failed half-way")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(LeaseRow)) == 0


def _claim_cpu(url: str, n: int, capacity_milli: int) -> int:
    """Allocate 1000 milli-CPU n times, checking free capacity inside the locked transaction."""
    store = Store(url, migrate=False)
    granted = 0
    for _ in range(n):
        with store.immediate() as s:
            used = s.scalar(select(func.coalesce(func.sum(LeaseRow.cpu_milli), 0)).where(LeaseRow.state == "active"))
            if used + 1000 <= capacity_milli:
                s.add(LeaseRow(id=new_id("lease"), owner="t", kind="cpu", state="active", cpu_milli=1000))
                granted += 1
    store.close()
    return granted


def test_immediate_transactions_never_overbook(store: Store) -> None:
    capacity = 25_000
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        granted = sum(pool.starmap(_claim_cpu, [(store.url, 12, capacity)] * 4))
    with store.session() as s:
        used = s.scalar(select(func.sum(LeaseRow.cpu_milli)))
    assert granted == 25 and used == capacity


def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot reach the database at postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x"):
        Store("postgresql+psycopg://u:secret@127.0.0.1:1/x")


def test_invalid_url_is_one_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="is not valid"):
        Store("nosuchdialect://x")


def test_unwritable_sqlite_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable):
        Store(f"sqlite:///{blocker}/sub/wb.db")


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://ada:pw@h/db") == "postgresql://ada:***@h/db"


def test_workbench_opens_its_store_lazily(wb) -> None:  # type: ignore[no-untyped-def]
    assert "store" not in wb.__dict__
    wb.devices()
    assert "store" not in wb.__dict__
    with wb.store.session() as s:
        s.add(JobRow(id="job-1", name="n", owner=wb.user, kind="script", target="t.py", state="queued"))
    assert Path(wb.settings.database.split("///")[1]).exists()
