"""The timeline's level of detail runs in the browser: zooming in swaps blocks for events."""

from __future__ import annotations

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
