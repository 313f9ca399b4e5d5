"""Shared fixtures: a Workbench on a fresh data directory, and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg import PostgresServer, pg_bindir  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches the user's real data directory or a stray workbench.toml."""
    for key in list(os.environ):
        if key.startswith("WORKBENCH_") and not key.startswith(("WORKBENCH_TEST_", "WORKBENCH_SLICE_", "WORKBENCH_JOB_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path_factory.mktemp("wbhome")))


@pytest.fixture
def wb(tmp_path: Path) -> Iterator[object]:
    """A Workbench on its embedded defaults, in a fresh temporary data directory."""
    from workbench import Workbench

    bench = Workbench(home=tmp_path / "home")
    yield bench
    bench.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a throw-away PostgreSQL server started for this test session."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries are not installed (make test installs Debian's postgresql)")
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "requires_browser" in item.keywords and not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
            item.add_marker(pytest.mark.skip(reason="Debian's chromium is not installed (make test installs it)"))
        if "requires_postgres" in item.keywords and pg_bindir() is None:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL server binaries are not installed"))
        if "requires_gpu" in item.keywords and not _has_gpu():
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU on this machine"))


_GPU: bool | None = None


def _has_gpu() -> bool:
    global _GPU
    if _GPU is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _GPU = pynvml.nvmlDeviceGetCount() > 0
        except Exception:
            _GPU = False
    return _GPU
