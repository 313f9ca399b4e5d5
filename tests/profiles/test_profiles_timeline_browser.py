"""The timeline's level of detail runs in the browser: zooming in swaps blocks for events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from profiles_helpers import TRACES

from workbench.profiles.profile import Profile

pytestmark = pytest.mark.requires_browser


def test_zooming_in_shows_individual_events(tmp_path: Path) -> None:
    # Playwright's sync API refuses to run where an asyncio loop is current, which earlier tests
    # (Jupyter server fixtures, Dask clients) may leave behind in the main thread: use a thread.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    try:
        pool.submit(_zoom_in_and_out, tmp_path).result(timeout=240)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck browser fails the test, never hangs the run


def _zoom_in_and_out(tmp_path: Path) -> None:
    from bokeh.embed import file_html
    from bokeh.resources import INLINE
    from playwright.sync_api import sync_playwright

    fig = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False).timeline(detail_cap=2000)
    page_file = tmp_path / "timeline.html"
    page_file.write_text(file_html(fig, INLINE, "timeline"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                                          "--disable-component-update", "--no-first-run"])
        try:
            _check_zoom(browser.new_page(), page_file)
        finally:
            browser.close()


def _check_zoom(page: Any, page_file: Path) -> None:
    page.set_default_timeout(120_000)
    page.goto(page_file.as_uri())
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    count = """() => {
        const doc = Bokeh.documents[0];
        return [doc.get_model_by_name('wb-timeline-detail').data.start.length,
                doc.get_model_by_name('wb-timeline').x_range.start, doc.get_model_by_name('wb-timeline').x_range.end];
    }"""
    detail0, x0, x1 = page.evaluate(count)
    assert detail0 == 0  # 75k events: zoomed out, only blocks are drawn
    page.evaluate(f"""() => {{
        const r = Bokeh.documents[0].get_model_by_name('wb-timeline').x_range;
        r.start = {x0 + (x1 - x0) * 0.5}; r.end = {x0 + (x1 - x0) * 0.5005};
    }}""")
    detail1, *_ = page.evaluate(count)
    assert 0 < detail1 <= 2000
    page.evaluate(f"() => {{ const r = Bokeh.documents[0].get_model_by_name('wb-timeline').x_range; r.start = {x0}; r.end = {x1}; }}")
    detail2, *_ = page.evaluate(count)
    assert detail2 == 0


def test_dashboard_timeline_of_a_large_trace_is_answered_by_the_server(tmp_path: Path) -> None:
    """Above the browser limit (lowered here to 1,000 events) the page holds only the view; a
    zoom with the mouse wheel in the real dashboard brings the events of the new view."""
    from concurrent.futures import ThreadPoolExecutor

    import shutil

    from workbench import Workbench

    home = tmp_path / "home"
    trace = tmp_path / "diff_control_a100.json.gz"
    shutil.copy(TRACES / "diff_control_a100.json.gz", trace)
    wb = Workbench(home=home)
    try:
        profile_id = wb.profiles.load(trace).id
    finally:
        wb.close()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces_panel"))
    from faces_panel_harness import start_dashboard

    dash = start_dashboard(home, extra_env={"WORKBENCH_PROFILE_TIMELINE_BROWSER_EVENTS": "1000"})
    pool = ThreadPoolExecutor(1)
    try:
        pool.submit(_zoom_in_dashboard, dash.url + f"?page=profiles&id={profile_id}").result(timeout=240)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        dash.stop()


def _zoom_in_dashboard(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.locator(".bk-tab", has_text="Timeline").click()
            page.locator(".wb-timeline").wait_for()
            state = """() => {
                const models = Bokeh.documents.flatMap(d => [...d._all_models.values()]);
                const by = name => models.find(m => m.name === name);
                const detail = by('wb-timeline-detail'), blocks = by('wb-timeline-blocks');
                return {ready: !!detail, full: !!by('wb-timeline-full'), detail: detail ? detail.data.start.length : -1,
                        blocks: blocks ? blocks.data.start.length : -1};
            }"""
            page.wait_for_function(f"() => ({state})().ready")
            first = page.evaluate(state)
            assert first["full"] is False and first["detail"] == 0 and first["blocks"] > 0, first
            box = page.locator(".wb-timeline canvas").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            for _ in range(2):  # two wheel steps: from 475 ms to about 1 ms in view, a few hundred events
                page.mouse.wheel(0, -600)
                page.wait_for_timeout(300)
            page.wait_for_function(f"() => ({state})().detail > 0", timeout=30_000)
            assert page.evaluate(state)["blocks"] == 0
            for _ in range(12):  # back out (a wheel step zooms out less than in): blocks again
                page.mouse.wheel(0, 600)
                page.wait_for_timeout(200)
            page.wait_for_function(f"() => ({state})().blocks > 0 && ({state})().detail == 0", timeout=30_000)
        finally:
            browser.close()
