"""The JupyterLab sidebar's "My endpoints" section in Debian's Chromium: a deployed endpoint with
its requests/s and its URL through the server's proxy; Stop ends it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lab_server import LabServer, start_lab
from onnx_models import linear_onnx
from test_jupyterlab_browser import artifacts_dir, open_lab

pytestmark = [pytest.mark.requires_browser, pytest.mark.slow]
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    # This checkout's built sidebar first on JUPYTER_PATH: an installed copy may be older.
    path = tmp_path_factory.mktemp("jupyter-path")
    (path / "labextensions").mkdir()
    (path / "labextensions" / "gpu-workbench-jupyterlab").symlink_to(ROOT / "workbench" / "labextension")
    server = start_lab(tmp_path_factory.mktemp("endpointslab"), extra_env={"JUPYTER_PATH": str(path)})
    yield server
    server.stop()


def test_sidebar_lists_my_endpoint_with_its_rate_and_stops_it(lab: LabServer, browser: Any) -> None:
    from workbench import Workbench

    with Workbench(home=lab.home) as wb:
        ep = wb.endpoints.deploy(linear_onnx(lab.home / "linear.onnx"), slice="cpu", name="linear")
        try:
            for _ in range(20):
                ep.infer(np.ones((1, 16), np.float32))
            page = open_lab(browser, lab)
            page.locator('.jp-SideBar [data-id="workbench-sidebar"]').click()
            item = page.locator(f".jp-WorkbenchPanel .wb-endpoint[data-id='{ep.id}']")
            item.locator('.wb-badge[data-state="ready"]').wait_for(state="visible")
            assert "20 served" in item.locator(".wb-endpoint-rate").inner_text()
            port = ep.url.rsplit(":", 1)[1]
            href = item.locator(".wb-endpoint-url").get_attribute("href")
            assert href == f"/user/a%40b/proxy/{port}/v2/models/linear"
            page.screenshot(path=str(artifacts_dir() / "jupyterlab_endpoints.png"))
            item.locator("button", has_text="Stop").click()
            page.locator(".jp-WorkbenchPanel .wb-endpoints .wb-empty").wait_for(state="visible")
            assert wb.endpoints.get(ep.id).state == "stopped"
            assert not page.errors  # type: ignore[attr-defined]
            page.context.close()
        finally:
            wb.endpoints.stop(ep.id)
