"""The notebook widgets and the dashboard's pages without a browser: what they show and call."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "data" / "fleets" / "h100_2x8.toml"


@pytest.fixture
def fleet_wb(tmp_path):
    from workbench import Workbench

    bench = Workbench(home=tmp_path / "fleet-home", fleet=FLEET)
    yield bench
    bench.close()


def test_fleet_drawing_places_mig_instances_on_memory_slices_with_owners(fleet_wb) -> None:
    from workbench.widgets.render import fleet_html

    big = fleet_wb.slices.request("3g.40gb", wait=False)
    small = fleet_wb.slices.request("1g.10gb", wait=False)
    html = fleet_html(fleet_wb.devices(), fleet_wb.slices.list(all_users=True))
    assert html.count("class='wb-node'") == 2
    assert html.count("class='wb-mig'") == 16  # every H100 is drawn as its 8 memory slices
    for lease in (big, small):
        span = fleet_wb.devices().device(lease.device_keys[0]).spec.mig_profile(lease.profile).memory_slices
        assert f"grid-column:{lease.mig_start + 1}/span {span}" in html
        assert f"{lease.profile} · {fleet_wb.user}" in html
        assert lease.id in html  # the tooltip names the lease


def test_fleet_drawing_shows_cpu_shares_and_waiting_requests(wb) -> None:
    from workbench.widgets.render import fleet_html

    cores = wb.devices().devices[0].cores or 1
    held = wb.slices.request(f"cpu:{cores}", wait=False)
    html = fleet_html(wb.devices(), wb.slices.list(all_users=True))
    assert "width:100.00%" in html and f"{cores:g} core" in html and f" · {wb.user}" in html
    held.release()
    assert "width:" not in fleet_html(wb.devices(), wb.slices.list(all_users=True)).split("wb-bar")[1][:60]


def test_slice_form_offers_the_catalog_profiles_of_the_chosen_gpu(fleet_wb) -> None:
    from workbench.widgets import SliceRequestForm

    form = SliceRequestForm(fleet_wb)
    label = next(k for k in form.choices if "H100" in k)
    form.device.value = label
    assert [v for _, v in form.kind.options] == ["mig"]  # MIG mode: instances only
    expected = [p.name for p in fleet_wb.devices().device("h100-0/0").spec.mig_profiles]
    assert list(form.profile.options) == expected
    assert form.profile.layout.display == "" and form.fraction.layout.display == "none"
    form.profile.value = "2g.20gb"
    assert form.choice().spec() == "2g.20gb"


def _form_lists(form, set_device, kinds, profiles, nodes) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """What a form offers for each device it lists: (kinds, MIG profiles, nodes)."""
    out = {}
    for label in list(form.choices):
        set_device(label)
        out[label] = (kinds(), profiles(), nodes())
    return out


def test_notebook_form_and_dashboard_form_offer_what_the_core_offers(tmp_path) -> None:
    """One rule, three faces: the notebook form and the dashboard's form list exactly
    `wb.slices.offers()` (the sidebar shows its `offers` through REST, tested in the browser)."""
    from workbench import Workbench
    from workbench.app.feed import Feed
    from workbench.app.pages.fleet import SliceForm
    from workbench.widgets import SliceRequestForm

    with Workbench(home=tmp_path / "mixed", fleet=ROOT / "data" / "fleets" / "mig_and_plain.toml") as bench:
        core = {g.label: (list(g.kinds), g.profiles, ["", *g.nodes]) for g in bench.slices.offers()}
        assert len(core) == 3  # the H100 in MIG mode, the H100 not in MIG mode, the CPU
        notebook = SliceRequestForm(bench)
        assert _form_lists(
            notebook, lambda v: setattr(notebook.device, "value", v),
            lambda: [v for _, v in notebook.kind.options], lambda: list(notebook.profile.options),
            lambda: [v for _, v in notebook.node.options],
        ) == core
        notebook.close()
        dashboard = SliceForm(Feed(bench), on_change=lambda: None)
        assert _form_lists(
            dashboard, lambda v: setattr(dashboard.device, "value", v),
            lambda: list(dashboard.kind.options.values()), lambda: list(dashboard.profile.options),
            lambda: list(dashboard.node.options.values()),
        ) == core
        assert list(dashboard.device.options) == list(notebook.device.options) == list(core)


def test_slice_form_requests_and_shows_a_refusal(wb) -> None:
    from workbench.widgets import SliceRequestForm

    form = SliceRequestForm(wb)
    form.cpus.value = 1
    form.request()
    lease = form.wait(timeout=30)
    assert lease is not None and lease.state == "active"
    assert lease.id in form.status.value and "active" in form.status.value
    lease.release()
    form.cpus.value = 100_000
    form.request()
    assert form.wait(timeout=30) is lease  # unchanged: the new request was refused
    assert "Request refused" in form.status.value and "100000" in form.status.value


def test_slice_form_keeps_its_lease_alive_while_open(tmp_path) -> None:
    """The notebook face follows the keep-alive rule: renewed while the form is open and
    auto-renew is ticked; unticked, or the form closed, the lease expires one TTL later."""
    from workbench import Workbench
    from workbench.widgets import SliceRequestForm

    ttl_s = 3.0
    with Workbench(home=tmp_path / "ttl", lease_ttl_s=ttl_s) as bench:
        form = SliceRequestForm(bench)
        form.request()
        lease = form.wait(timeout=30)
        assert "expires" in form.status.value and form.auto_renew.value
        time.sleep(ttl_s + 1)  # past the first expiry: only renewals keep it
        bench.slices.sweep()
        assert lease.refresh().state == "active"
        form.auto_renew.value = False
        time.sleep(ttl_s + 0.5)
        bench.slices.sweep()
        assert lease.refresh().state == "expired"

        closing = SliceRequestForm(bench)
        closing.request()
        held = closing.wait(timeout=30)
        closing.close()
        time.sleep(ttl_s + 0.5)
        bench.slices.sweep()
        assert held.refresh().state == "expired"


TRAIN = """
import workbench

loss = 1.0
for step in range(12):
    loss *= 0.8
    workbench.log(step=step, loss=loss)
print("done", loss)
"""


def test_job_progress_follows_a_job_to_the_end_with_its_loss(wb, tmp_path) -> None:
    from workbench.widgets import JobProgress

    script = tmp_path / "tiny.py"
    script.write_text(TRAIN)
    job = wb.jobs.submit(script, slice="cpu", name="tiny")
    view = JobProgress(job, every_s=0.2)
    view.wait(timeout=120)
    assert job.state == "succeeded"
    assert "succeeded" in view.header.value and "tiny" in view.header.value
    assert len(view.plot.steps) == 12 and view.plot.values[-1] == pytest.approx(0.8**12)
    assert "done" in view.log_view.value
    assert view.cancel_button.layout.display == "none"
    assert not view.poller.running


def test_job_queue_streams_new_rows_and_patches_changed_cells() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from workbench.app.pages.jobs import JobQueue

    now = dt.datetime.now(dt.UTC)

    def job(i: int, state: str) -> SimpleNamespace:
        return SimpleNamespace(id=f"job-{i}", name="n", owner="o", state=state, slice_spec="cpu", lease_id=None,
                               created_at=now, started_at=None, ended_at=None, error=None)

    queue = JobQueue()
    assert queue.update([job(1, "queued"), job(0, "queued")]) == (2, 0)
    streamed, patched = queue.update([job(2, "queued"), job(1, "running"), job(0, "queued")])
    assert (streamed, patched) == (1, 1)
    table = queue.table.value
    assert list(table["id"]) == ["job-0", "job-1", "job-2"]
    assert table.loc[table["id"] == "job-1", "state"].item() == "running"
    assert queue.update([job(2, "queued"), job(1, "running"), job(0, "queued")]) == (0, 0)


def test_profiles_page_shows_a_profile_and_compares_two(wb) -> None:
    from workbench.app.feed import Feed
    from workbench.app.pages.profiles import ProfilesPage

    traces = sorted((ROOT / "data" / "traces").glob("*.json.gz"))[:2]
    if len(traces) < 2:
        pytest.skip("needs two traces in data/traces")
    a, b = (wb.profiles.register(t) for t in traces)
    page = ProfilesPage(Feed(wb), a.id, b.id)
    assert page.title == f"Profile {a.id}"
    import panel as pn

    tabs = next(o for o in page.body.select(pn.Tabs))
    assert tabs._names == ["Summary", "Top kernels", "Timeline", "Compare"]
    html = " ".join(str(p.object) for p in page.body.select(pn.pane.HTML))
    assert "unavailable" not in html and "failed" not in html, html[:500]
    assert any(isinstance(p, pn.pane.Bokeh) for p in tabs.select(pn.pane.Bokeh))  # timeline, compare chart
    compare = tabs.objects[3]
    assert any(isinstance(t, pn.widgets.Tabulator) and len(t.value) for t in compare.select(pn.widgets.Tabulator))


def test_feed_reports_a_missing_noun_instead_of_failing(wb) -> None:
    from workbench.app.feed import Feed, Unavailable

    feed = Feed(wb)

    def broken() -> None:
        raise ModuleNotFoundError("no module", name="workbench.energy.service")

    value = feed._cached("x", "energy", broken)
    assert isinstance(value, Unavailable) and "energy" in value.reason and not value


def test_serve_command_and_proxy_entry() -> None:
    from typer.testing import CliRunner

    from workbench.app.proxy import setup_workbench
    from workbench.app.server import normalize_prefix
    from workbench.cli import app

    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    for option in ("--port", "--prefix", "--address", "--show", "--no-show"):
        assert option in help_text
    entry = setup_workbench()
    assert "{port}" in entry["command"] and "{base_url}workbench/" in entry["command"]
    assert entry["absolute_url"] is True and entry["launcher_entry"]["title"] == "Workbench"
    assert Path(entry["launcher_entry"]["icon_path"]).is_file()
    assert normalize_prefix("user/a%40b/workbench/") == "/user/a%40b/workbench"
    assert normalize_prefix("/") == ""


def test_pyproject_registers_the_launcher_entry_point() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'\[project\.entry-points\.jupyter_serverproxy_servers\]\s*\nworkbench = '
                     r'"workbench\.app\.proxy:setup_workbench"', text)


def test_dashboard_identity_is_the_jupyterhub_user(monkeypatch, tmp_path) -> None:
    from workbench import Workbench
    from workbench.app.layout import nav_html

    monkeypatch.setenv("JUPYTERHUB_USER", "a@b")
    bench = Workbench(home=tmp_path / "hub")
    assert bench.user == "a@b"
    assert "a@b" in nav_html("fleet", bench.user)


def test_loss_plot_sends_only_changed_series() -> None:
    from workbench.widgets import LossPlot

    plot = LossPlot()
    changes: list[str] = []
    plot.observe(lambda change: changes.append(change["name"]), names=["steps", "values"])
    plot.update([0.0, 1.0], [2.0, 1.0])
    plot.update([0.0, 1.0], [2.0, 1.0])  # unchanged: nothing is sent to the browser
    assert changes == ["steps", "values"]
    plot.update([0.0, 1.0, 2.0], [2.0, 1.0, 0.5])
    assert changes == ["steps", "values"] * 2
    assert plot.steps == [0.0, 1.0, 2.0] and "3 steps, last 0.5" in repr(plot)


def test_a_dashboard_tab_renews_my_slices_while_open_and_stops_when_closed(tmp_path) -> None:
    """The keep-alive rule in a dashboard session: beats renew my live slices (not the one whose
    auto-renew is off); after the session closes, nothing is renewed and they expire."""
    from workbench import Workbench
    from workbench.app.feed import Feed
    from workbench.app.server import Session

    ttl_s = 3.0
    with Workbench(home=tmp_path / "ttl", lease_ttl_s=ttl_s) as bench:
        kept = bench.slices.request("cpu:1", wait=False)
        left = bench.slices.request("cpu:1", wait=False)
        tab = Session(Feed(bench))
        tab.keepalive.set_auto_renew(left.id, False)
        deadline = time.monotonic() + ttl_s + 1  # past the first expiry: only renewals keep a lease
        while time.monotonic() < deadline:
            tab.beat()
            time.sleep(tab.keepalive.period_s)
        bench.slices.sweep()
        assert bench.slices.get(kept.id).state == "active"
        assert bench.slices.get(left.id).state == "expired"
        tab.close()
        time.sleep(ttl_s + 0.5)
        tab.beat()
        bench.slices.sweep()
        assert bench.slices.get(kept.id).state == "expired"


def test_the_kernels_verdict_counts_skips_apart_with_their_reasons() -> None:
    from types import SimpleNamespace

    from workbench.app.pages.kernels import verdict_html

    results = [SimpleNamespace(ok=True, skipped_reason=None)] * 10 + \
        [SimpleNamespace(ok=None, skipped_reason="bfloat16 is not run by the Triton interpreter")] * 5
    text = verdict_html(results)
    assert "10 passed, 5 skipped" in text and "(bfloat16 is not run by the Triton interpreter ×5)" in text
    assert "all" not in text and "failed" not in verdict_html(results)
    assert verdict_html([*results, SimpleNamespace(ok=False, skipped_reason=None)]).count("1 failed") == 1
