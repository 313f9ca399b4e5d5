"""The dashboard in a real browser (Debian's chromium via Playwright), at `/` and behind a prefix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faces_panel_harness import ROOT, shot

pytestmark = pytest.mark.requires_browser


def test_fleet_page_shows_the_cpu_device(dashboard, page) -> None:
    page.goto(dashboard.url)
    cpu = page.locator(".wb-dev[data-device$='/cpu']")
    cpu.wait_for()
    assert "CPU" in cpu.inner_text()
    assert page.locator(".wb-nav a.active").inner_text() == "Fleet & slices"
    shot(page, f"fleet-{dashboard.prefix and 'prefix' or 'root'}")


def request_cpu_slice(page) -> str:
    """Fill the form for one CPU core and wait for the granted lease; returns its id."""
    form = page.locator(".wb-slice-form")
    form.get_by_role("button", name="CPU").wait_for()
    shown = page.locator(".wb-lease-status code")
    before = shown.inner_text() if shown.count() else None
    form.get_by_role("button", name="Request slice").click()
    granted = page.locator(".wb-lease-status", has=page.locator(".wb-badge.wb-state-active"))
    if before is not None:  # the previous grant stays shown until the server answers the click
        granted = granted.filter(has_not_text=before)
    granted.wait_for()
    return granted.locator("code").inner_text()


def test_request_and_release_a_cpu_slice(dashboard, page) -> None:
    page.goto(dashboard.url)
    lease_id = request_cpu_slice(page)
    row = page.locator(".wb-my-slices .tabulator-row", has_text=lease_id)
    row.wait_for()
    page.locator(".wb-dev[data-device$='/cpu'] .wb-part").first.wait_for()
    shot(page, f"slice-{dashboard.prefix and 'prefix' or 'root'}")
    row.locator(".wb-release").click()
    page.locator(".wb-released", has_text=lease_id).wait_for()
    row.wait_for(state="detached")


TORCH_SCRIPT = '''\
"""A tiny PyTorch regression, logging its loss each step (the test's stand-in for examples/)."""
import torch

import workbench

torch.manual_seed(0)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(30):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    workbench.log(step=step, loss=loss.item())
torch.save(model.state_dict(), workbench.artifacts_dir() / "model.pt")
print("final loss", loss.item())
'''

FAILING_SCRIPT = '''\
def load_batch(n):
    raise ValueError(f"batch {n} is corrupt")

print("starting")
load_batch(3)
'''


def torch_example(tmp_path: Path) -> Path:
    """The PyTorch example job: examples/ if the jobs engineer's example exists, else the script above."""
    for candidate in sorted((ROOT / "examples").glob("*torch*.py")):
        return candidate
    path = tmp_path / "train_torch.py"
    path.write_text(TORCH_SCRIPT)
    return path


def choose_option(select, text: str) -> None:
    """Pick the option whose label contains `text` (Panel's option values are the labels)."""
    select.locator("option", has_text=text).wait_for(state="attached")
    label = next(t for t in select.locator("option").all_inner_texts() if text in t)
    select.select_option(label=label)


def submit_job(page, path: Path, *, framework: str = "PyTorch", profile: bool = False) -> str:
    form = page.locator(".wb-submit-form")
    form.locator("input[type=text]").first.fill(str(path))
    form.locator("select").first.select_option(label=framework)
    if profile:
        form.get_by_text("capture a profile").click()  # the words tick the box
        assert form.locator("input[type=checkbox]").is_checked()
    form.get_by_role("button", name="Submit job").click()
    link = page.locator(".wb-submitted code")
    link.wait_for()
    return link.inner_text()


def test_full_flow_slice_job_loss_plot_profile_release(dashboard, page, tmp_path) -> None:
    """CPU slice -> PyTorch job on it -> succeeded with a loss plot -> its profile -> release."""
    where = "prefix" if dashboard.prefix else "root"
    page.goto(dashboard.url)
    lease_id = request_cpu_slice(page)

    other_tab = page.context.new_page()  # a second tab on the queue sees the job arrive and finish
    other_tab.goto(dashboard.url + "?page=jobs")
    other_tab.locator(".wb-jobs-table").wait_for()

    page.locator(".wb-nav a[data-page=jobs]").click()
    page.locator(".wb-submit-form").wait_for()
    choose_option(page.locator(".wb-submit-form select").nth(1), lease_id)
    job_id = submit_job(page, torch_example(tmp_path), profile=True)
    page.locator(".wb-jobs-table .tabulator-row", has_text=job_id).wait_for()

    page.locator(".wb-open-job").click()
    page.locator(".wb-job-state .wb-state-succeeded").wait_for(timeout=120_000)
    # The loss plot has its points: Bokeh draws on a canvas, so read the data source the page streams.
    page.wait_for_function(
        """() => Bokeh.documents.some(d => [...d._all_models.values()].some(
               m => m.data && m.data.loss && m.data.loss.length >= 30))""", timeout=30_000)
    shot(page, f"job-{where}")
    other_tab.locator(".wb-jobs-table .tabulator-row", has_text=job_id).filter(has_text="succeeded").wait_for()
    shot(other_tab, f"jobs-{where}")
    other_tab.close()
    page.locator(".bk-tab", has_text="Logs").click()
    page.locator(".wb-log", has_text="succeeded after").wait_for()  # the job's log tail
    page.locator(".bk-tab", has_text="Profile").click()
    page.locator(".wb-open-profile").click(timeout=60_000)
    page.locator(".wb-profile-tabs").wait_for()
    shot(page, f"profile-{where}")
    page.locator(".bk-tab", has_text="Timeline").click()
    page.locator(".wb-timeline").wait_for()
    shot(page, f"profile-timeline-{where}")

    page.locator(".wb-nav a[data-page=fleet]").click()
    row = page.locator(".wb-my-slices .tabulator-row", has_text=lease_id)
    row.locator(".wb-release").click()
    row.wait_for(state="detached")


def test_kernels_page_checks_a_kernel_and_draws_the_roofline(dashboard, page) -> None:
    if dashboard.prefix:
        pytest.skip("one run of the kernels page is enough; the prefix runs cover navigation")
    page.goto(dashboard.url + "?page=kernels")
    page.locator(".wb-roofline").wait_for()
    form = page.locator("select")
    choose_option(form.nth(0), "softmax")
    choose_option(form.nth(1), "triton")
    page.get_by_role("button", name="Check against reference").click()
    verdict = page.locator(".wb-check-verdict", has_text="softmax")
    verdict.wait_for(timeout=120_000)
    # skipped cases are counted apart, with their reason, never as passes
    assert re.search(r"\d+ passed(, \d+ skipped \(.+\))?$", verdict.inner_text()), verdict.inner_text()
    assert "all" not in verdict.inner_text()
    page.locator(".wb-kernel-results .tabulator-row", has_text="softmax").first.wait_for()
    shot(page, "kernels")


def test_a_failed_job_shows_its_error_and_traceback(dashboard, page, tmp_path) -> None:
    if dashboard.prefix:
        pytest.skip("error display does not depend on the prefix")
    script = tmp_path / "broken.py"
    script.write_text(FAILING_SCRIPT)
    page.goto(dashboard.url + "?page=jobs")
    job_id = submit_job(page, script, framework="none")
    page.locator(".wb-open-job").click()
    page.locator(".wb-job-state .wb-state-failed").wait_for(timeout=90_000)
    error = page.locator(".wb-error", has_text="batch 3 is corrupt")
    error.wait_for()
    assert "Traceback" in error.inner_text()
    assert "load_batch" in error.inner_text()
    shot(page, "job-failed")
    page.locator(".bk-tab", has_text="Profile").click()
    no_profile = page.locator(".wb-no-profile", has_text="capture a profile")
    no_profile.wait_for()
    assert "profile=True" not in no_profile.inner_text()  # the dashboard's words, not the Python API's
    page.goto(dashboard.url + "?page=jobs")
    row = page.locator(".wb-jobs-table .tabulator-row", has_text=job_id)
    row.wait_for()
    assert "failed" in row.inner_text()


@pytest.fixture
def fresh_dashboard(tmp_path_factory) -> object:
    """A server of the test's own, for tests that hold all capacity or stop the server."""
    from faces_panel_harness import start_dashboard

    server = start_dashboard(tmp_path_factory.mktemp("fresh"))
    yield server
    server.stop()


def test_the_form_shows_a_refusal_and_a_queue_position(fresh_dashboard, page) -> None:
    page.goto(fresh_dashboard.url)
    form = page.locator(".wb-slice-form")
    cores = form.locator("input").first  # the CPU cores spinner (Panel renders it as a text input)
    cores.fill("4096")
    cores.press("Enter")
    form.get_by_role("button", name="Request slice").click()
    refusal = page.locator(".wb-request-status .wb-error", has_text="Request refused")
    refusal.wait_for()
    assert "4096" in refusal.inner_text()  # the allocator's reason names what was asked and what exists
    shot(page, "slice-refused")

    total = page.locator(".wb-dev[data-device$='/cpu'] .wb-dev-label").inner_text().split("·")[-1].split()[0]
    cores.fill(total)
    cores.press("Enter")
    form.get_by_role("button", name="Request slice").click()
    page.locator(".wb-lease-status .wb-state-active").wait_for()
    first = page.locator(".wb-lease-status code").inner_text()
    cores.fill("1")
    cores.press("Enter")
    form.get_by_role("button", name="Request slice").click()
    waiting = page.locator(".wb-lease-status .wb-state-queued")
    waiting.wait_for()
    assert page.locator(".wb-queue").inner_text() == "1"
    assert page.locator(".wb-reason").inner_text().strip()
    shot(page, "slice-queued")
    page.locator(".wb-my-slices .tabulator-row", has_text=first).locator(".wb-release").click()
    page.locator(".wb-lease-status .wb-state-active").wait_for()  # the queued request is granted


def test_server_gone_shows_a_banner_and_reconnects(fresh_dashboard, page) -> None:
    from faces_panel_harness import start_dashboard

    page.goto(fresh_dashboard.url + "?page=jobs")
    page.locator(".wb-jobs-table").wait_for()
    fresh_dashboard.stop()
    page.locator(".notyf__disconnect", has_text="Lost the connection").wait_for(timeout=20_000)
    page.locator(".wb-offline-banner").wait_for(timeout=20_000)
    shot(page, "server-gone")
    again = start_dashboard(fresh_dashboard.home, port=fresh_dashboard.port)
    try:
        page.locator(".wb-offline-banner").wait_for(state="detached", timeout=30_000)  # reloaded
        page.locator(".wb-jobs-table").wait_for()
        page.locator(".wb-submit-form").wait_for()
    finally:
        again.stop()


def test_fleet_page_draws_mig_gpus_of_a_declared_fleet(page, tmp_path_factory) -> None:
    from faces_panel_harness import start_dashboard

    from workbench import Workbench

    home = tmp_path_factory.mktemp("mig")
    fleet = ROOT / "data" / "fleets" / "h100_2x8.toml"
    with Workbench(home=home, fleet=fleet, user="grace") as bench:
        held = [bench.slices.request(spec, wait=False) for spec in ("3g.40gb", "1g.10gb", "2g.20gb")]
    server = start_dashboard(home, extra_env={"WORKBENCH_FLEET": str(fleet)})
    try:
        page.goto(server.url)
        page.locator(".wb-mig").first.wait_for()
        assert page.locator(".wb-mig").count() == 16
        gpu = page.locator(f".wb-dev[data-device='{held[0].device_keys[0]}']")
        for lease in held:
            assert f"{lease.profile} · grace" in gpu.inner_text()
        form = page.locator(".wb-slice-form")
        form.locator("select").nth(0).select_option(index=0)
        assert "3g.40gb" in form.locator("select").nth(2).inner_text()  # the catalog's H100 profiles
        shot(page, "fleet-mig")
    finally:
        server.stop()
