"""The store on SQLite and on a real PostgreSQL server started by the tests."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from workbench.errors import StoreUnavailable
from workbench.units import as_utc
from workbench.store import Store, mask_url
from workbench.store.engine import DriverStatement
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


# -- statements run on the driver (the allocation's hot path) -----------------------------------
def _lease_values(lease_id: str) -> dict[str, object]:
    now = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
    values = {c.key: None for c in LeaseRow.__table__.columns}
    values.update(
        id=lease_id, owner="ada", project="p", kind="fraction", state="active", node="n1", device_keys=["n1/0"],
        gpu_milli=250, cpu_milli=1500, memory_bytes=141 * 10**9, priority=2, request={"spec": "0.25", "n": None},
        env={"A": "1"}, ttl_s=30.5, created_at=now, granted_at=now, expires_at=now + dt.timedelta(seconds=30), usage={},
    )
    return values


def test_driver_statements_write_and_read_what_the_orm_does(store: Store) -> None:
    insert_lease = DriverStatement(insert(LeaseRow.__table__), column_keys=[c.key for c in LeaseRow.__table__.columns])
    by_id = DriverStatement(select(LeaseRow.__table__).where(LeaseRow.id == bindparam("lease_id")))
    connection = store.allocation_connection()
    with store.locked(connection):
        assert insert_lease.run(connection, _lease_values("lease-d")) == []
    with store.session() as s:
        row = s.get(LeaseRow, "lease-d")
        assert row.request == {"spec": "0.25", "n": None} and row.device_keys == ["n1/0"] and row.memory_bytes == 141 * 10**9
        assert as_utc(row.created_at) == dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
        assert row.reason is None and row.mig_start is None
        s.add(LeaseRow(**{**_lease_values("lease-o"), "env": {"B": "2"}}))
    with store.locked(connection):
        (written,) = by_id.run(connection, {"lease_id": "lease-o"})
    record = dict(zip([c.key for c in LeaseRow.__table__.columns], written))
    assert record["env"] == {"B": "2"} and record["device_keys"] == ["n1/0"] and record["ttl_s"] == 30.5
    assert as_utc(record["expires_at"]) == dt.datetime(2026, 3, 4, 5, 6, 37, 890123, tzinfo=dt.UTC)
    connection.close()


def test_driver_statement_errors_roll_back_and_keep_their_kind(store: Store) -> None:
    insert_lease = DriverStatement(insert(LeaseRow.__table__), column_keys=[c.key for c in LeaseRow.__table__.columns])
    connection = store.allocation_connection()
    with store.locked(connection):
        insert_lease.run(connection, _lease_values("lease-1"))
    with pytest.raises(IntegrityError), store.locked(connection):
        insert_lease.run(connection, _lease_values("lease-2"))
        insert_lease.run(connection, _lease_values("lease-1"))  # the same primary key again
    with store.session() as s:
        assert s.scalars(select(LeaseRow.id)).all() == ["lease-1"]  # lease-2 was rolled back with it
    if store.is_sqlite:  # elsewhere the statement runs through SQLAlchemy (defaults, IN lists)
        with pytest.raises(KeyError, match="owner"):
            insert_lease.run(connection, {"id": "lease-3"})
        with pytest.raises(ValueError, match="expanding IN"):
            DriverStatement(select(LeaseRow.id).where(LeaseRow.state.in_(("active", "idle")))).run(connection)
    connection.close()


def test_json_columns_keep_what_json_kept(store: Store) -> None:
    with store.session() as s:
        s.add(LeaseRow(**{**_lease_values("lease-j"), "usage": {"ratio": float("nan"), 3: "an integer key"}}))
        s.add(LeaseRow(**{**_lease_values("lease-k"), "usage": {"bytes": 2**70}}))  # beyond orjson: json writes it
    with store.session() as s:
        # NaN is stored as null (PostgreSQL refuses NaN in JSON); keys become strings, as with json.
        assert s.get(LeaseRow, "lease-j").usage == {"ratio": None, "3": "an integer key"}
        assert s.get(LeaseRow, "lease-k").usage == {"bytes": 2**70}
    if store.is_sqlite:  # a row written by the json module before: NaN still reads back
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE leases SET usage = '{\"ratio\": NaN}' WHERE id = 'lease-j'")
        with store.session() as s:
            assert math.isnan(s.get(LeaseRow, "lease-j").usage["ratio"])
