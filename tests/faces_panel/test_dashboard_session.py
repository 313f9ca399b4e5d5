"""One dashboard tab in a real browser: page switches in place, nothing asked of the internet, a
quiet server log, empty states that explain themselves, and slices kept alive only while the tab
is open (Debian's chromium via Playwright, one `workbench serve` for the module)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from faces_panel_harness import ROOT, Dashboard, shot, start_dashboard

pytestmark = pytest.mark.requires_browser

TTL_S = 6.0
PAGES = {"jobs": ".wb-submit-form", "profiles": ".wb-profiles-table", "kernels": ".wb-roofline", "fleet": ".wb-dev"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A dashboard whose leases expire after 6 s unless renewed, so keep-alive shows within seconds."""
    dash = start_dashboard(tmp_path_factory.mktemp("session"), extra_env={"WORKBENCH_LEASE_TTL_S": str(TTL_S)})
    yield dash
    dash.stop()


@pytest.fixture(scope="module")
def bench(server: Dashboard) -> Iterator[Any]:
    """The test's own handle on the server's data directory (same user, same database)."""
    from workbench import Workbench

    with Workbench(home=server.home, lease_ttl_s=TTL_S) as wb:
        yield wb


def is_local(url: str) -> bool:
    """A request served by this machine: 127.0.0.1, a `data:` URL, or a `blob:` of a local page."""
    if url.startswith("data:"):
        return True
    return urlsplit(url.removeprefix("blob:")).hostname == "127.0.0.1"


def track_requests(page: Any) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def test_pages_switch_in_place_ask_nothing_of_the_internet_and_log_no_tracebacks(server: Dashboard, page: Any) -> None:
    urls = track_requests(page)
    page.goto(server.url)
    page.locator(".wb-dev").first.wait_for()
    page.evaluate("window.__sameDocument = true")  # gone if the browser loads a new document
    for name, content in [*PAGES.items(), *PAGES.items()]:
        page.locator(f".wb-nav a[data-page={name}]").click()
        page.locator(f".wb-nav a.active[data-page={name}]").wait_for()
        page.locator(content).first.wait_for()
        assert page.evaluate("window.__sameDocument === true"), f"switching to {name} reloaded the page"
        assert page.url.endswith(f"?page={name}")
    # links inside a page switch in place too, and Back loads the page it lands on
    page.locator(".wb-nav a[data-page=jobs]").click()
    page.locator(".wb-submit-form").wait_for()
    page.go_back()
    page.locator(".wb-dev").first.wait_for()
    # ordinary full loads and a tab closed mid-update, as a user does them
    for name in ("jobs", "kernels", "fleet"):
        page.goto(server.url + f"?page={name}")
        page.locator(PAGES[name]).first.wait_for()
    other = page.context.new_page()
    other.goto(server.url + "?page=jobs")
    other.locator(".wb-jobs-table").wait_for()
    other.close()
    page.wait_for_timeout(1500)
    outside = [u for u in urls if not is_local(u)]
    assert outside == [], f"the dashboard asked other hosts: {sorted(set(outside))[:5]}"
    log = server.log()
    assert "Traceback" not in log and "WebSocketClosedError" not in log, log[-3000:]


def test_empty_states_explain_themselves(server: Dashboard, bench: Any, page: Any) -> None:
    page.goto(server.url)
    page.locator(".wb-no-slices", has_text="Request one above").wait_for()
    page.locator(".wb-nav a[data-page=profiles]").click()
    page.locator(".wb-no-profiles", has_text="capture a profile").wait_for()

    cpu_trace = bench.profiles.load(ROOT / "data" / "traces" / "cpu_only.json.gz", name="cpu only")
    page.goto(server.url + f"?page=profiles&id={cpu_trace.id}")
    page.locator(".wb-profile-tabs").wait_for()
    page.locator(".bk-tab", has_text="Top kernels").click()
    page.locator(".wb-no-kernels", has_text="captured on the CPU").wait_for()
    page.locator(".bk-tab", has_text="Compare").click()
    page.locator(".wb-no-compare", has_text="no other profile to compare with").wait_for()
    shot(page, "profile-cpu-only-compare-empty")


def lease_row(page: Any, lease_id: str) -> Any:
    return page.locator(".wb-my-slices .tabulator-row", has_text=lease_id)


def request_slice(page: Any) -> str:
    """Request one CPU slice and return the id of the lease granted by this click.

    The status box still shows the previous grant until the server answers the click, so wait
    for an active lease whose id differs from the one shown before (reading the first active
    badge raced the server and returned the previous, since expired, lease)."""
    form = page.locator(".wb-slice-form")
    form.get_by_role("button", name="CPU").wait_for()
    shown = page.locator(".wb-lease-status code")
    before = shown.inner_text() if shown.count() else None
    form.get_by_role("button", name="Request slice").click()
    granted = page.locator(".wb-lease-status", has=page.locator(".wb-state-active"))
    if before is not None:
        granted = granted.filter(has_not_text=before)
    granted.wait_for()
    return granted.locator("code").inner_text()


def expires_at(bench: Any, lease_id: str) -> dt.datetime:
    return bench.slices.get(lease_id).expires_at


def test_an_open_tab_renews_its_slices_until_auto_renew_is_off_or_the_tab_closes(server: Dashboard, bench: Any,
                                                                                 page: Any) -> None:
    page.set_default_timeout(90_000)  # "My slices" refreshes on the server's timer, slow on a loaded 2-core machine
    page.goto(server.url)
    kept = request_slice(page)
    row = lease_row(page, kept)
    row.wait_for()
    assert "UTC" in row.inner_text()  # the expiry, shown
    auto = row.locator(".tabulator-cell[tabulator-field='auto-renew']")
    assert auto.inner_text().startswith("on")
    first = expires_at(bench, kept)
    time.sleep(TTL_S + 2)  # past the first expiry: only renewals keep it
    bench.slices.sweep()
    assert bench.slices.get(kept).state == "active" and expires_at(bench, kept) > first
    shot(page, "fleet-auto-renew")

    page.locator(".wb-nav a[data-page=jobs]").click()  # another page of the same tab keeps renewing
    page.locator(".wb-submit-form").wait_for()
    time.sleep(TTL_S)
    bench.slices.sweep()
    assert bench.slices.get(kept).state == "active"
    page.locator(".wb-nav a[data-page=fleet]").click()

    auto = lease_row(page, kept).locator(".tabulator-cell[tabulator-field='auto-renew']")
    auto.click()
    lease_row(page, kept).locator(".tabulator-cell[tabulator-field='auto-renew']", has_text="off (").wait_for()
    deadline = time.monotonic() + TTL_S * 3
    while bench.slices.get(kept).state == "active" and time.monotonic() < deadline:
        time.sleep(0.5)
        bench.slices.sweep()
    assert bench.slices.get(kept).state == "expired"

    closed = request_slice(page)
    lease_row(page, closed).wait_for()
    page.close()  # Bokeh destroys the session within ~30 s; renewals stop then, and one TTL later it expires
    deadline = time.monotonic() + 60
    while bench.slices.get(closed).state == "active" and time.monotonic() < deadline:
        time.sleep(1)
        bench.slices.sweep()
    assert bench.slices.get(closed).state == "expired"
