"""The planner's default forecaster: fitted on the past only, and run-now when it cannot beat it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench.energy.forecast import MAX_LEAD_H, fit_forecast
from workbench.energy.schedule import plan_start
from workbench.energy.signal import from_points, load_signal

HOUR_S = 3600.0


def _signal(values: np.ndarray):
    t = pd.date_range("2022-01-01", periods=len(values), freq="h", tz="UTC")
    return from_points(t.astype(str).tolist(), values, zone="TEST", source="synthetic")


@pytest.mark.parametrize("k", [30, 200, 24 * 40 + 7])
def test_a_forecast_never_looks_at_the_hours_from_now_on(k: int) -> None:
    """Altering the series from the current hour on changes nothing of the forecast made at it."""
    values = load_signal("BPAT").values[: 24 * 60].copy()
    before = fit_forecast(values, k)
    altered = values.copy()
    altered[k:] = np.random.default_rng(k).uniform(0, 900, len(values) - k)
    after = fit_forecast(altered, k)
    assert np.array_equal(before.values, after.values) and before.method == after.method
    assert before.backtest_gain == after.backtest_gain
    # ... and through the signal's forecast, which the planner calls
    a, b = _signal(values), _signal(altered)
    now = a.hour0_s + k * HOUR_S + 900
    hours = a.hour0_s + (k + np.arange(0, 30)) * HOUR_S
    assert np.array_equal(a.forecast("blend", now)(hours), b.forecast("blend", now)(hours))


def test_days_that_repeat_are_forecast_exactly() -> None:
    hours = np.arange(24 * 40)
    values = np.where((hours % 24 >= 10) & (hours % 24 < 16), 100.0, 400.0)
    fitted = fit_forecast(values, 24 * 35 + 3)
    assert fitted.fallback is None
    expected = values[24 * 35 + 3: 24 * 35 + 3 + MAX_LEAD_H]
    assert np.allclose(fitted.values, expected, atol=1.0)  # the ridge penalty shrinks a little
    assert np.array_equal(fitted.values < 250, expected < 250)  # the clean hours are where they are


def test_when_waiting_never_paid_the_plan_is_to_run_now() -> None:
    """A grid that only gets dirtier: every past deferral would have cost carbon, so the forecaster
    distrusts itself and the planner runs the job now, saying why."""
    signal = _signal(100.0 + np.arange(24 * 40) * 0.5)
    now = dt.datetime.fromtimestamp(signal.hour0_s + 24 * 30 * HOUR_S + 600, dt.timezone.utc)
    forecast = signal.forecast("blend", now)
    assert forecast.method == "run-now" and "beat running at once" in forecast.fallback
    plan = plan_start(now=now, duration_s=3600, deadline="12h", forecast=forecast, forecast_name="blend")
    assert plan.start == now and plan.fallback == forecast.fallback


def test_the_blend_beats_persistence_where_days_do_not_repeat() -> None:
    """Hydro-dominated BPAT, the week before 1 July 2022: the backtest prefers the blend."""
    values = load_signal("BPAT").values
    fitted = fit_forecast(values, 24 * 181)
    assert fitted.fallback is None
    assert fitted.backtest_gain["blend"] > fitted.backtest_gain["persistence"]


def test_short_histories_fall_back() -> None:
    assert fit_forecast(np.full(10, 300.0), 10).method == "run-now"
    assert fit_forecast(np.arange(60.0), 60).method == "persistence"


def test_the_blend_is_the_ridge_fit_of_each_lead_written_out() -> None:
    """The fit builds every lead's normal equations from whole shifted columns (for speed); here
    one lead's design matrix is written out row by row and solved directly: same forecast."""
    from workbench.energy.forecast import HISTORY_DAYS, RIDGE

    values = load_signal("ERCO").values
    k = 24 * 150 + 5
    fitted = fit_forecast(values, k)
    y = values[k - HISTORY_DAYS * 24 - MAX_LEAD_H - 168 - 24:k].astype(float)
    t = len(y) - 1
    profile = {i: np.mean([y[i - 24 * j] for j in range(7)]) for i in range(144, len(y))}
    for lead in (1, 7, 24, 25, 48):
        same = lambda o: o + lead - 24 * ((lead + 23) // 24)  # noqa: E731 - the same hour, last observed day
        week = lambda o: o + lead - 168 * ((lead + 167) // 168)  # noqa: E731

        def row(o: int) -> list[float]:
            return [y[o], np.mean(y[o - 23:o + 1]), y[same(o)], y[week(o)], profile[same(o)], 1.0]

        origins = range(t - MAX_LEAD_H - HISTORY_DAYS * 24 + 1, t - MAX_LEAD_H + 1)
        x = np.array([row(o) for o in origins])
        xtx = x.T @ x
        w = np.linalg.solve(xtx + RIDGE * np.trace(xtx) / 6 * np.eye(6), x.T @ np.array([y[o + lead] for o in origins]))
        if fitted.method == "blend":
            assert fitted.values[lead - 1] == pytest.approx(max(float(np.dot(row(t), w)), 0.0), rel=1e-9)
    assert fitted.method == "blend"
