"""The dashboard's Endpoints page in a real browser: a deployed endpoint, its requests/s and its
last bench drawn as latency against throughput."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faces_panel_harness import shot, start_dashboard
from onnx_models import linear_onnx

pytestmark = pytest.mark.requires_browser
pytest.importorskip("onnxruntime")


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from workbench import Workbench

    home = tmp_path_factory.mktemp("endpoints-dashboard")
    server = start_dashboard(home)
    wb = Workbench(home=home)
    ep = wb.endpoints.deploy(linear_onnx(home / "linear.onnx"), slice="cpu", name="linear")
    try:
        wb.endpoints.bench(ep, concurrency=(1, 4), seconds=0.5, warmup_s=0.1)
        yield server, ep
    finally:
        wb.endpoints.stop(ep.id)
        wb.close()
        server.stop()


def test_endpoints_page_shows_a_deployed_endpoint_and_its_bench(served: tuple[Any, Any], page: Any) -> None:
    server, ep = served
    page.goto(server.url + "?page=endpoints")
    row = page.locator(".wb-endpoints .tabulator-row", has_text=ep.id)
    row.wait_for()
    assert "ready" in row.inner_text() and ep.url in row.inner_text()
    assert page.locator(".wb-nav a.active").inner_text() == "Endpoints"
    detail = page.locator(".wb-endpoint-detail")
    bench = detail.locator(".wb-bench")
    bench.locator("table").wait_for()
    assert "raw session.run" in bench.inner_text()
    detail.locator("canvas").first.wait_for()  # the Bokeh latency-vs-throughput plot
    shot(page, "dashboard-endpoints")
