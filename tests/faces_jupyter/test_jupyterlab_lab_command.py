"""`workbench lab` as a new user runs it (what `make lab` ends with), in Debian's Chromium: it
prints a URL with a token on the port asked for, JupyterLab is rooted at the project with the tour
open, the sidebar runs the README's own example, and it keeps my slices alive while it is open."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lab_server import NO_NEWS, free_port

ROOT = Path(__file__).resolve().parents[2]
TTL_S = 6.0

pytestmark = [pytest.mark.requires_browser, pytest.mark.slow]


@dataclass
class Lab:
    url: str  # as printed: http://localhost:PORT/lab/tree/notebooks/00_tour.ipynb?token=...
    port: int
    home: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`python -m workbench lab --port P --no-browser` from the project folder, with its own Jupyter
    folders and data directory, and leases that expire after 6 s unless renewed."""
    base = tmp_path_factory.mktemp("labcmd")
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(NO_NEWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTERHUB_"))}
    env.update(WORKBENCH_HOME=str(base / "wbhome"), WORKBENCH_LEASE_TTL_S=str(TTL_S), PYTHONUNBUFFERED="1",
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"))
    port = free_port()
    log_path = base / "lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "workbench", "lab", "--port", str(port), "--no-browser",
                                    "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", "--LabApp.news_url=",
                                    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = None
    deadline = time.monotonic() + 90
    while url is None and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"workbench lab exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        found = re.search(rf"http://(?:localhost|127\.0\.0\.1):{port}/\S+\?token=[0-9a-f]+", log_path.read_text())
        url = found.group(0) if found else None
        time.sleep(0.3)
    try:
        assert url is not None, f"no URL with a token in:\n{log_path.read_text()[-3000:]}"
        yield Lab(url, port, base / "wbhome", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def bench(lab: Lab) -> Iterator[Any]:
    from workbench import Workbench

    with Workbench(home=lab.home, lease_ttl_s=TTL_S) as wb:
        yield wb


def open_lab(browser: Any, lab: Lab) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 860}).new_page()
    page.set_default_timeout(60_000)
    page.goto(lab.url)
    page.wait_for_selector("#jp-main-dock-panel", state="visible")
    # the layout is restored once the tour's tab shows; then open the sidebar unless it already is
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="00_tour.ipynb").wait_for(state="visible")
    if not page.locator(".jp-WorkbenchPanel").is_visible():
        page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
    page.locator(".jp-WorkbenchPanel .wb-node").first.wait_for(state="visible")
    return page


def test_lab_opens_the_tour_at_the_project_root_and_the_sidebar_runs_the_readme_example(browser: Any, lab: Lab) -> None:
    assert f":{lab.port}/lab/tree/notebooks/00_tour.ipynb?token=" in lab.url  # the port asked for, the tour
    page = open_lab(browser, lab)
    try:
        base, token = lab.url.split("/lab/", 1)[0], lab.url.rsplit("token=", 1)[1]
        example = page.request.get(f"{base}/api/contents/examples/torch_cnn_digits.py?content=0&token={token}")
        assert example.status == 200  # the README's example is under Jupyter's root: the project
        panel = page.locator(".jp-WorkbenchPanel")
        panel.locator("input[name=target]").fill("examples/torch_cnn_digits.py")
        panel.locator("select[name=slice]").select_option("")  # a new slice for the job
        panel.locator(".wb-submit-form button").click()
        job = panel.locator(".wb-job", has_text="torch_cnn_digits")
        job.wait_for(state="visible")
        assert "outside" not in (panel.locator(".wb-error:not(.wb-endpoints-error)").text_content() or "")
        # started from the project folder: it runs (finishing it is the other sidebar test's business)
        job.locator('.wb-badge[data-state="running"], .wb-badge[data-state="succeeded"]').first.wait_for(
            state="visible", timeout=180_000)
        assert not job.locator('.wb-badge[data-state="failed"]').count()
    finally:
        page.context.close()


def renew_box(page: Any, lease_id: str) -> Any:
    return page.locator(f".jp-WorkbenchPanel .wb-slice[data-id='{lease_id}'] input[name=auto-renew]")


def request_cpu_slice(page: Any) -> str:
    """Request one CPU core in the sidebar; returns the new lease's id once it shows as active."""
    panel = page.locator(".jp-WorkbenchPanel")
    ids = "els => els.map(e => e.dataset.id)"
    before = set(panel.locator(".wb-slice").evaluate_all(ids))
    panel.locator("select[name=spec]").select_option("cpu:1")
    panel.locator(".wb-request-form button").click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(panel.locator(".wb-slice").evaluate_all(ids)) - before
        if new:
            lease_id = new.pop()
            panel.locator(f".wb-slice[data-id='{lease_id}'] .wb-badge[data-state='active']").wait_for(state="visible")
            return lease_id
        time.sleep(0.2)
    raise AssertionError(f"no new slice in the sidebar: {panel.inner_text()}")


def wait_for_expiry(bench: Any, lease_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while bench.slices.get(lease_id).state == "active" and time.monotonic() < deadline:
        time.sleep(0.5)
        bench.slices.sweep()
    return bench.slices.get(lease_id).state


def test_the_sidebar_renews_my_slices_while_jupyterlab_is_open(browser: Any, lab: Lab, bench: Any) -> None:
    page = open_lab(browser, lab)
    try:
        kept = request_cpu_slice(page)
        box = renew_box(page, kept)
        assert box.is_checked()  # on by default, beside the expiry
        assert "expires in" in page.locator(f".wb-slice[data-id='{kept}'] .wb-expires").inner_text()
        first: dt.datetime = bench.slices.get(kept).expires_at
        page.locator(".jp-SideBar [data-id='filebrowser']").click()  # the sidebar closed, JupyterLab open
        time.sleep(TTL_S + 2)
        bench.slices.sweep()
        assert bench.slices.get(kept).state == "active" and bench.slices.get(kept).expires_at > first
        page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
        renew_box(page, kept).uncheck()
        assert wait_for_expiry(bench, kept, TTL_S * 3) == "expired"

        closed = request_cpu_slice(page)
        assert renew_box(page, closed).is_checked()
    finally:
        page.context.close()  # JupyterLab closed: nothing renews any more
    assert wait_for_expiry(bench, closed, TTL_S * 3) == "expired"


def test_a_port_that_is_not_a_port_is_refused_in_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "workbench", "lab", "--port", "70000", "--no-browser"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode != 0
    assert "--port 70000 is not a TCP port" in out.stderr and "Traceback" not in out.stderr
