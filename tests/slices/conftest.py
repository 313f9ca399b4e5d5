"""Fixtures for the slices tests: declared fleets, several users on one database, a fake clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODES_CSV = ROOT / "data" / "cluster" / "openb_node_list_gpu_node.csv"
PODS_CSV = ROOT / "data" / "cluster" / "openb_pod_list_default.csv"
H100_FLEET = ROOT / "data" / "fleets" / "h100_2x8.toml"

MIXED_FLEET = """
[[nodes]]
name = "a100"
count = 2
gpus = 4
model = "A100-80GB"
cpus = 32
memory_gib = 256

[[nodes]]
name = "h100"
gpus = 2
model = "H100-80GB"
cpus = 16
memory_gib = 128
mig = true

[[nodes]]
name = "t4"
gpus = 1
model = "T4"
cpus = 8
memory_gib = 64
"""


class FakeClock:
    """The service's clock seam: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def mixed_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_FLEET)
    return path


@pytest.fixture
def h100_fleet() -> Path:
    return H100_FLEET


@pytest.fixture
def t4_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "t4.toml"
    path.write_text('[[nodes]]\nname = "t4"\ngpus = 2\nmodel = "T4"\n')
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.requires_postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each store-touching test runs on SQLite (the default) and on a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_db")


@pytest.fixture
def bench(tmp_path: Path, clock: FakeClock, database_url: str | None) -> Iterator[Callable[..., Any]]:
    """`bench(user="alice", fleet=..., **settings)`: Workbenches sharing one data directory (one
    database, SQLite or PostgreSQL), each acting for its user, with the fake clock in their slice
    service."""
    from workbench import Workbench
    from workbench.slices.service import LocalSliceService

    made: list[Any] = []
    home = tmp_path / "shared-home"

    def make(user: str = "alice", *, probe: Any = None, **overrides: Any) -> Any:
        overrides.setdefault("home", home)
        if database_url is not None:
            overrides.setdefault("database_url", database_url)
        wb = Workbench(user=user, **overrides)
        wb.__dict__["slices"] = LocalSliceService(
            settings=wb.settings, store=lambda: wb.store, devices=wb.devices, endpoints=lambda: wb.endpoints,
            clock=clock, sleep=lambda s: None, usage_probe=probe,
        )
        made.append(wb)
        return wb

    yield make
    for wb in made:
        wb.close()


@pytest.fixture
def pg_db(postgres_url: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server (so the books hold only this test's leases)."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"slices_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/" + name
