"""Fixtures of the browser tests: a real `workbench serve` on a free port, and Debian's chromium.

The browser is never downloaded: Playwright launches `/usr/bin/chromium` (Debian's package);
tests marked `requires_browser` are skipped when it is missing. Screenshots go to the folder in
`WORKBENCH_TEST_ARTIFACTS` (default `tests/artifacts/`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faces_panel_harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    PREFIX,
    Dashboard,
    artifacts_dir,
    shot,
    start_dashboard,
)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser tab; on failure its screenshot and the browser console go to the artifacts."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    yield pg
    if request.node.stash.get(_FAILED, False):
        name = "FAILED-" + "".join(c if c.isalnum() else "_" for c in request.node.name)
        shot(pg, name)
        (artifacts_dir() / f"{name}.console.txt").write_text("\n".join(console))
    context.close()


@pytest.fixture(scope="module", params=["", PREFIX], ids=["root", "prefix"])
def dashboard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The real server, once at `/` and once behind a JupyterHub-like prefix with a quoted `@`."""
    server = start_dashboard(tmp_path_factory.mktemp("dash"), prefix=request.param)
    yield server
    server.stop()
    (artifacts_dir() / f"server-{request.param and 'prefix' or 'root'}.log").write_text(server.log())
