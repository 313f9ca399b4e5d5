"""`wb.energy`: planning and carbon on the configured signal, meters by device key, the platform view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench import Workbench
from workbench.energy.service import plot_summary
from workbench.errors import InvalidRequest, NotFound
from workbench.store.models.base import new_id
from workbench.store.models.jobs import JobRow

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


def test_plan_start_uses_the_configured_zone(wb) -> None:
    now = dt.datetime(2022, 7, 10, 3, tzinfo=UTC)  # 20:00 in California: solar comes in the morning
    plan = wb.energy.plan(2 * 3600, "20h", now)
    assert wb.energy.signal.zone == "CISO"
    assert plan.forecast == "blend" and now < plan.start and plan.end <= plan.deadline
    assert wb.energy.plan_start(2 * 3600, "20h", now) == plan.start
    truth = wb.energy.signal
    assert truth.mean_between(plan.start, plan.end) < truth.mean_between(now, now + dt.timedelta(hours=2))
    perfect = wb.energy.plan(2 * 3600, "20h", now, forecast="perfect")
    assert truth.mean_between(perfect.start, perfect.end) <= truth.mean_between(plan.start, plan.end) + 1e-9


def test_planning_today_replays_the_series_year_and_never_runs_late(wb) -> None:
    start = wb.energy.plan_start(3600, "8h")
    now = dt.datetime.now(UTC)
    assert now - dt.timedelta(seconds=5) <= start <= now + dt.timedelta(hours=7)
    with pytest.raises(InvalidRequest, match="shorter than the job"):
        wb.energy.plan_start(3 * 3600, "2h")


def test_other_zone_and_signal_file(tmp_path: Path) -> None:
    with Workbench(home=tmp_path / "h", carbon_zone="NYIS") as wb:
        assert wb.energy.signal.zone == "NYIS"
    with Workbench(home=tmp_path / "h", carbon_signal=ROOT / "data/carbon/ERCO_2022_hourly.csv") as wb:
        assert wb.energy.signal.zone == "ERCO"
    with Workbench(home=tmp_path / "h", carbon_zone="ATLANTIS") as wb, pytest.raises(NotFound, match="valid: CISO"):
        wb.energy.carbon_g(1.0, dt.datetime(2022, 1, 1), dt.datetime(2022, 1, 2))


def test_carbon_g_and_job_fields(wb) -> None:
    start, end = dt.datetime(2022, 4, 1, 20, tzinfo=UTC), dt.datetime(2022, 4, 1, 22, tzinfo=UTC)
    sig = wb.energy.signal
    expected = 7.2e6 / 3.6e6 * (sig.intensity(start) + sig.intensity(start + dt.timedelta(hours=1))) / 2
    assert wb.energy.carbon_g(7.2e6, start, end) == pytest.approx(expected)


def test_meter_by_device_key_on_a_declared_fleet(tmp_path: Path) -> None:
    with Workbench(home=tmp_path / "h", fleet=ROOT / "data/fleets/h100_2x8.toml") as wb:
        meter = wb.energy.meter(["h100-0/0", "h100-0/1"], share=0.5)
        with meter:
            pass
        fields = wb.energy.job_fields(meter.reading)
        assert fields["energy_estimated"] is True and fields["avg_power_w"] == pytest.approx(700.0, rel=0.02)
        assert fields["carbon_g"] >= 0
        with pytest.raises(NotFound, match="no device"):
            wb.energy.meter("nowhere/9")


def _job(owner: str, project: str, energy_j: float | None, carbon_g: float | None, ended: dt.datetime, estimated: bool = False) -> JobRow:
    return JobRow(
        id=new_id("job"), name="j", owner=owner, project=project, kind="callable", target="m:f", state="succeeded",
        energy_j=energy_j, carbon_g=carbon_g, energy_estimated=estimated, ended_at=ended, started_at=ended - dt.timedelta(hours=1),
    )


def test_summary_sums_by_user_and_project_over_a_period(wb) -> None:
    day = dt.datetime(2026, 11, 2, 12, tzinfo=UTC)
    with wb.store.session() as s:
        s.add_all([
            _job("ana", "llm", 3.6e6, 200.0, day),
            _job("ana", "llm", 1.8e6, 100.0, day + dt.timedelta(days=1), estimated=True),
            _job("ana", "vision", 3.6e6, 50.0, day),
            _job("bo", "llm", 7.2e6, 400.0, day),
            _job("bo", "llm", 3.6e6, 999.0, day - dt.timedelta(days=30)),  # before the period
            _job("cy", "llm", None, None, day),  # no reading: not counted
        ])
    ds = wb.energy.summary(day - dt.timedelta(days=1), day + dt.timedelta(days=5))
    assert set(ds["user"].values) == {"ana", "bo"}
    assert float(ds["energy_kwh"].sel(user="ana", project="llm")) == pytest.approx(1.5)
    assert float(ds["carbon_g"].sel(user="bo", project="llm")) == pytest.approx(400.0)
    assert float(ds["carbon_g"].sum()) == pytest.approx(750.0)
    assert int(ds["jobs"].sum()) == 4 and int(ds["estimated_jobs"].sum()) == 1
    assert ds["energy_kwh"].attrs["units"] == "kWh"
    daily = wb.energy.summary(day - dt.timedelta(days=1), day + dt.timedelta(days=5), freq="1D")
    assert daily.sizes["time"] == 2 and float(daily["carbon_g"].sum()) == pytest.approx(750.0)
    fig = plot_summary(ds)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["ana", "bo"]
    with pytest.raises(InvalidRequest, match="not after"):
        wb.energy.summary(day, day)
    empty = wb.energy.summary(day + dt.timedelta(days=100), None)
    assert empty.sizes["user"] == 0


@pytest.mark.requires_postgres
def test_summary_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    import uuid

    project = f"p-{uuid.uuid4().hex[:8]}"  # the server is shared by the session's tests
    day = dt.datetime(2026, 11, 2, 12, tzinfo=UTC)
    with Workbench(home=tmp_path / "h", database_url=postgres_url) as wb:
        with wb.store.session() as s:
            s.add_all([_job("ana", project, 3.6e6, 10.0, day), _job("ana", project, 3.6e6, 5.0, day + dt.timedelta(hours=1))])
        ds = wb.energy.summary(day - dt.timedelta(hours=1), day + dt.timedelta(hours=2), freq="1D")
        assert float(ds["carbon_g"].sel(user="ana", project=project).sum()) == pytest.approx(15.0)
        assert float(ds["energy_kwh"].sel(user="ana", project=project).sum()) == pytest.approx(2.0)
