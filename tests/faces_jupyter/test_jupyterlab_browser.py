"""JupyterLab in Debian's Chromium (Playwright): the sidebar requests a CPU slice, submits a
job, sees it succeed and opens its log in a tab that follows it. Screenshots go to
$WORKBENCH_TEST_ARTIFACTS (default tests/artifacts/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_server import LabServer, start_lab

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.requires_browser, pytest.mark.slow]

JOB_SCRIPT = """\
import time
print("loading data", flush=True)
for step in range(5):
    time.sleep(0.2)
    print(f"step {step} loss {1.0 / (step + 1):.3f}", flush=True)
print("done", flush=True)
"""


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("WORKBENCH_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = start_lab(tmp_path_factory.mktemp("browserlab"))
    (server.root / "train.py").write_text(JOB_SCRIPT)
    yield server
    server.stop()


def open_lab(browser: Any, lab: LabServer) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{lab.url}lab?token={lab.token}")
    page.wait_for_selector("#jp-main-dock-panel", state="visible")
    page.errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture(scope="module")
def page(browser: Any, lab: LabServer) -> Iterator[Any]:
    page = open_lab(browser, lab)
    yield page
    page.context.close()


def test_sidebar_requests_a_slice_runs_a_job_and_follows_its_log(lab: LabServer, page: Any) -> None:
    shots = artifacts_dir()
    # the launcher has the dashboard tile (served by jupyter-server-proxy)
    tile = page.locator(".jp-LauncherCard", has_text="Workbench dashboard")
    tile.wait_for(state="visible")
    page.screenshot(path=str(shots / "jupyterlab_launcher.png"))

    page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
    panel = page.locator(".jp-WorkbenchPanel")
    panel.locator(".wb-node").first.wait_for(state="visible")
    assert "CPU only" in panel.locator(".wb-summary").inner_text()

    panel.locator("select[name=spec]").select_option("cpu:1")
    panel.locator(".wb-request-form button").click()
    slice_item = panel.locator(".wb-slice").first
    slice_item.locator('.wb-badge[data-state="active"]').wait_for(state="visible")
    assert "CPU ×1" in slice_item.inner_text()
    status = page.locator(".jp-WorkbenchStatus")
    page.wait_for_function("() => document.querySelector('.jp-WorkbenchStatus')?.dataset.state === 'active'")
    assert status.inner_text().startswith("Slice: CPU ×1")

    panel.locator("input[name=target]").fill("train.py")
    lease_id = slice_item.get_attribute("data-id")
    assert panel.locator("select[name=slice]").input_value() == lease_id
    panel.locator(".wb-submit-form button").click()
    job_item = panel.locator(".wb-job").first
    job_item.wait_for(state="visible")
    job_item.locator('.wb-badge[data-state="succeeded"]').wait_for(state="visible", timeout=90_000)
    page.screenshot(path=str(shots / "jupyterlab_sidebar.png"))

    job_item.locator("button", has_text="Logs").click()
    log_view = page.locator(".jp-WorkbenchLogs")
    log_view.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('.jp-WorkbenchLogs')?.dataset.done === 'true'")
    text = log_view.locator(".wb-log").inner_text()
    assert "step 4 loss 0.200\ndone\n" in text and "succeeded after" in text
    assert page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Logs: train").count() == 1
    page.screenshot(path=str(shots / "jupyterlab_job_logs.png"))

    # release from the sidebar: the slice leaves the list and the status bar says so
    slice_item.locator("button", has_text="Release").click()
    panel.locator(".wb-slices .wb-empty").wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('.jp-WorkbenchStatus')?.dataset.state === 'none'")
    assert page.errors == []  # type: ignore[attr-defined]


def test_palette_has_the_workbench_commands(page: Any) -> None:
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#command-palette")
    palette.locator("input").fill("Workbench")
    items = palette.locator(".lm-CommandPalette-itemLabel")
    items.first.wait_for(state="visible")
    labels = items.all_inner_texts()
    assert "Workbench: Request slice" in labels and "Workbench: Open dashboard" in labels
    page.screenshot(path=str(shots_path("jupyterlab_palette.png")))
    page.keyboard.press("Escape")


def shots_path(name: str) -> Path:
    return artifacts_dir() / name


@pytest.fixture(scope="module")
def fleet_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    fleet = ROOT / "data" / "fleets" / "mig_and_plain.toml"
    server = start_lab(tmp_path_factory.mktemp("fleetlab"), extra_env={"WORKBENCH_FLEET": str(fleet)})
    yield server
    server.stop()


def test_every_kind_the_sidebar_offers_is_granted(browser: Any, fleet_lab: LabServer) -> None:
    """On a fleet of one H100 in MIG mode and one not, the form offers MIG profiles only for the
    first, shares and whole GPUs only for the second, and CPU cores; each one is granted."""
    page = open_lab(browser, fleet_lab)
    try:
        page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
        panel = page.locator(".jp-WorkbenchPanel")
        panel.locator(".wb-node").first.wait_for(state="visible")
        assert "2 GPUs on 2 nodes" in panel.locator(".wb-summary").inner_text()
        groups = panel.locator("select[name=spec] optgroup").evaluate_all(
            "gs => gs.map(g => [g.label, [...g.querySelectorAll('option')].map(o => o.value)])")
        offered = {label: values for label, values in groups}
        mig = next(v for k, v in offered.items() if "MIG" in k)
        plain = next(v for k, v in offered.items() if "H100" in k and "MIG" not in k)
        assert mig[0] == "1g.10gb" and "7g.80gb" in mig and "0.25" not in mig and "gpu" not in mig
        assert plain == ["0.25", "0.5", "gpu"]
        assert any(v == ["cpu:1", "cpu:2", "cpu:4", "cpu:8"] for v in offered.values())
        count = panel.locator("select[name=spec] option").count()
        for index in range(count):
            panel.locator("select[name=spec]").select_option(index=index)
            spec = panel.locator("select[name=spec]").input_value()
            panel.locator(".wb-request-form button").click()
            item = panel.locator(".wb-slice").first
            item.locator('.wb-badge[data-state="active"]').wait_for(state="visible")
            assert panel.locator(".wb-error").first.is_hidden(), (spec, panel.locator(".wb-error").first.inner_text())
            item.locator("button", has_text="Release").click()
            panel.locator(".wb-slices .wb-empty").wait_for(state="visible")
        page.screenshot(path=str(shots_path("jupyterlab_sidebar_mixed_fleet.png")))
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
