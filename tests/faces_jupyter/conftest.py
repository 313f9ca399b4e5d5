"""Fixtures for the Jupyter face's tests (the in-process server's are in `jupyter_fixtures`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's hooks that run `async def` tests (its fixtures come from `jupyter_fixtures`)
from pytest_jupyter.jupyter_core import pytest_pycollect_makeitem, pytest_pyfunc_call  # noqa: F401


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright (never a downloaded browser), one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def store_home() -> Path:
    """The data directory the server's Workbench uses (set by the suite's autouse fixture)."""
    return Path(os.environ["WORKBENCH_HOME"])


@pytest.fixture
def as_user(store_home: Path) -> Any:
    """A Workbench on the server's data directory acting for another user (to own things)."""
    from workbench import Workbench

    made: list[Any] = []

    def make(user: str) -> Any:
        wb = Workbench(home=store_home, user=user)
        made.append(wb)
        return wb

    yield make
    for wb in made:
        wb.close()
