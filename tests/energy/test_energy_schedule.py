"""The pure planner: lowest expected carbon before the deadline, capacity, fallbacks, bad deadlines."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.energy.schedule import plan_start
from workbench.units import parse_duration_s
from workbench.errors import InvalidRequest

UTC = dt.timezone.utc
NOW = dt.datetime(2022, 6, 1, 5, 20, tzinfo=UTC)
T0 = NOW.replace(minute=0).timestamp()


def hourly(values: list[float]):
    """A forecast that is values[k] in hour k after NOW's hour, 500 after."""
    def forecast(hours: np.ndarray) -> np.ndarray:
        k = ((hours - T0) // 3600).astype(int)
        return np.array([values[i] if 0 <= i < len(values) else 500.0 for i in k])
    return forecast


def test_picks_the_cleanest_window_before_the_deadline() -> None:
    plan = plan_start(now=NOW, duration_s=7200, deadline="8h", forecast=hourly([400, 400, 300, 100, 100, 90, 400, 50, 50, 50]))
    assert plan.start == dt.datetime(2022, 6, 1, 9, tzinfo=UTC)  # hours 4-5: 100, 90
    assert plan.expected_ci == pytest.approx(95) and plan.fallback is None
    assert plan.end <= plan.deadline and plan.expected_saving > 0.7
    assert "less carbon" in repr(plan)


def test_ties_go_to_the_earliest_and_a_flat_forecast_runs_now() -> None:
    plan = plan_start(now=NOW, duration_s=1800, deadline="6h", forecast=hourly([200] * 10))
    assert plan.start == NOW and plan.deferred_s == 0


def test_capacity_is_respected() -> None:
    forecast = hourly([400, 400, 100, 100, 200, 400, 400])
    busy = (NOW.replace(minute=0) + dt.timedelta(hours=2)).timestamp()

    def fits(start: float, end: float) -> bool:  # hour 2 is full
        return end <= busy or start >= busy + 3600
    plan = plan_start(now=NOW, duration_s=3600, deadline="6h", forecast=forecast, fits=fits)
    assert plan.start == NOW.replace(minute=0) + dt.timedelta(hours=3)
    full = plan_start(now=NOW, duration_s=3600, deadline="6h", forecast=forecast, fits=lambda a, b: False)
    assert full.start == NOW and "no capacity" in full.fallback


@pytest.mark.parametrize("bad", [[np.nan] * 12, [-5.0] * 12, [np.inf] * 12])
def test_a_bad_forecast_falls_back_to_running_now(bad: list[float]) -> None:
    plan = plan_start(now=NOW, duration_s=3600, deadline="8h", forecast=hourly(bad))
    assert plan.start == NOW and "forecast" in plan.fallback


def test_a_failing_forecast_falls_back_to_running_now() -> None:
    def broken(hours: np.ndarray) -> np.ndarray:
        raise ConnectionError("API down")
    plan = plan_start(now=NOW, duration_s=3600, deadline="8h", forecast=broken)
    assert plan.start == NOW and "API down" in plan.fallback


def test_impossible_deadlines_are_errors() -> None:
    with pytest.raises(InvalidRequest, match="in the past"):
        plan_start(now=NOW, duration_s=60, deadline=NOW - dt.timedelta(minutes=1), forecast=hourly([1]))
    with pytest.raises(InvalidRequest, match="shorter than the job"):
        plan_start(now=NOW, duration_s=3 * 3600, deadline="2h", forecast=hourly([1]))
    with pytest.raises(InvalidRequest, match="positive"):
        plan_start(now=NOW, duration_s=0, deadline="2h", forecast=hourly([1]))


def test_durations() -> None:
    assert parse_duration_s("8h") == 28800 and parse_duration_s("90m") == 5400 and parse_duration_s("1.5d") == 129600
    assert parse_duration_s("45") == 45 and parse_duration_s(dt.timedelta(minutes=2)) == 120
    with pytest.raises(InvalidRequest, match="is not a duration"):
        parse_duration_s("soon")


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(0, 1000), st.just(float("nan"))), min_size=30, max_size=30),
    duration_s=st.integers(1, 20 * 3600),
    slack_s=st.integers(0, 10 * 3600),
    minute=st.integers(0, 59),
)
def test_never_misses_the_deadline_and_never_starts_early(values, duration_s, slack_s, minute) -> None:
    now = NOW.replace(minute=minute)
    deadline = now + dt.timedelta(seconds=duration_s + slack_s)
    plan = plan_start(now=now, duration_s=duration_s, deadline=deadline, forecast=hourly(values))
    assert now <= plan.start
    assert plan.end <= deadline
    if plan.fallback is None and plan.expected_ci is not None:
        assert plan.expected_ci <= plan.run_now_ci + 1e-9
