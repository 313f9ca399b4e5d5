"""When to start a deferrable job: the window before its deadline with the least expected carbon.

How the jobs service uses it::

    start = wb.energy.plan_start(duration_s=3600, deadline="8h")     # datetime (UTC): when to start
    plan = wb.energy.plan(duration_s=3600, deadline=dt, now=None, forecast="persistence", fits=None)
    plan.start, plan.end, plan.expected_ci, plan.run_now_ci, plan.fallback   # the decision and its why
    wb.energy.carbon_g(energy_j, start, end)                          # grams CO2e of a finished run

`deadline` is a datetime (naive means UTC), a timedelta or a duration string such as "8h",
"90m", "1d" counted from `now`. `fits(start_s, end_s) -> bool` (UNIX seconds) is the capacity
check: the slices service answers whether the job's slice is free over that interval; the planner
never picks a start where it is not.

This module is the pure part: no clock, no database, no files. `plan_start` gets `now`, the job's
expected duration, its deadline, a forecast (a function from hour starts, in UNIX seconds, to
gCO2/kWh) and optionally the capacity check, and returns a `Plan`:

- Candidate starts are `now` and every whole hour after it up to `deadline - duration`; each is
  scored by the forecast's mean intensity over the run (the forecast is a step function per hour).
  The lowest wins, ties go to the earliest; a candidate that does not fit capacity is skipped.
- A deferrable job never misses its deadline because of a bad forecast: if the forecast is
  missing, negative or not finite anywhere in the window, or no candidate fits capacity, the plan
  is to run now, with `fallback` saying why.
- A deadline in the past, or closer than the job's duration, is an error (`InvalidRequest`): no
  plan could meet it, and silently running late would hide that.

Forecasts for the built-in series (`CarbonSignal.forecast`): `blend`, the default, is fitted on
the hours observed at `now` (`workbench.energy.forecast`: the level, yesterday and last week,
weighted per lead time) and carries a `fallback` reason when its own backtest says it cannot beat
running now, in which case the plan is to run now; `persistence` is the value at the same hour on
the last day already observed at `now`; `perfect` uses the recorded values (an oracle, the upper
bound of what planning can gain).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.errors import InvalidRequest
from workbench.units import as_utc, parse_duration_s

HOUR_S = 3600.0
UTC = dt.timezone.utc

Forecast = Callable[[np.ndarray], np.ndarray]
Fits = Callable[[float, float], bool]
Deadline = dt.datetime | dt.timedelta | str | float  # an absolute time, or a duration from now

def resolve_deadline(deadline: Deadline, now: dt.datetime) -> dt.datetime:
    """An absolute UTC deadline from a datetime, or a duration counted from `now`."""
    if isinstance(deadline, dt.datetime):
        return as_utc(deadline)
    return as_utc(now) + dt.timedelta(seconds=parse_duration_s(deadline, "deadline"))


@dataclass(frozen=True)
class Plan:
    """A start time and why: expected mean intensities (gCO2/kWh) of the plan and of running now."""

    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    deadline: dt.datetime
    forecast: str
    expected_ci: float | None
    run_now_ci: float | None
    fallback: str | None = None

    @property
    def deferred_s(self) -> float:
        return (self.start - self.now).total_seconds()

    @property
    def expected_saving(self) -> float | None:
        """Share of carbon the plan is expected to save against running now (by the forecast)."""
        if self.expected_ci is None or not self.run_now_ci:
            return None
        return 1.0 - self.expected_ci / self.run_now_ci

    def as_json(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "now": self.now.isoformat(),
            "deadline": self.deadline.isoformat(),
            "forecast": self.forecast,
            "expected_ci": self.expected_ci,
            "run_now_ci": self.run_now_ci,
            "deferred_s": self.deferred_s,
            "fallback": self.fallback,
        }

    def __repr__(self) -> str:
        why = f", fallback: {self.fallback}" if self.fallback else ""
        saving = self.expected_saving
        gain = f", expected {saving:.0%} less carbon than now" if saving is not None else ""
        return f"<Plan start {self.start:%Y-%m-%d %H:%M} UTC (in {self.deferred_s / 3600:.1f} h) by {self.forecast}{gain}{why}>"


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


def plan_start(
    *,
    now: dt.datetime,
    duration_s: float,
    deadline: Deadline,
    forecast: Forecast,
    fits: Fits | None = None,
    forecast_name: str = "forecast",
) -> Plan:
    """The lowest-carbon start before `deadline` under `forecast`; see the module docstring."""
    now = as_utc(now)
    deadline_at = resolve_deadline(deadline, now)
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise InvalidRequest(f"expected duration {duration_s!r} s must be a positive number of seconds")
    t0, t_deadline = now.timestamp(), deadline_at.timestamp()
    if t_deadline <= t0:
        raise InvalidRequest(f"deadline {deadline_at.isoformat()} is in the past (now is {now.isoformat()}); give a later deadline")
    if t_deadline - t0 < duration_s - 1e-6:
        raise InvalidRequest(
            f"deadline {deadline_at.isoformat()} is {_human(t_deadline - t0)} away, shorter than the job's "
            f"expected {_human(duration_s)}; give a deadline at least {_human(duration_s)} from now"
        )

    def run_now(reason: str | None, expected: float | None = None, now_ci: float | None = None) -> Plan:
        return Plan(now, _from_epoch(t0 + duration_s), now, deadline_at, forecast_name, expected, now_ci, reason)

    # A forecast that knows it cannot be trusted (the blend, after its backtest) says why.
    distrust = getattr(forecast, "fallback", None)
    if distrust:
        return run_now(str(distrust))
    latest = max(t_deadline - duration_s, t0)
    first_hour = math.floor(t0 / HOUR_S) * HOUR_S
    candidates = np.concatenate(([t0], np.arange(first_hour + HOUR_S, latest + 1e-9, HOUR_S)))
    hours = np.arange(first_hour, math.ceil(t_deadline / HOUR_S) * HOUR_S + HOUR_S, HOUR_S)
    try:
        values = np.asarray(forecast(hours), dtype=float)
    except Exception as exc:  # a broken forecast source must not stop the job
        return run_now(f"the forecast failed ({exc}); running now")
    if values.shape != hours.shape or not np.all(np.isfinite(values)) or np.any(values < 0):
        return run_now("the forecast is missing, negative or not finite in the window; running now")
    # Integral of the step function from hours[0] to t: cumulative[k] + values[k] * (t - hours[k]).
    cumulative = np.concatenate(([0.0], np.cumsum(values * HOUR_S)))

    def integral(t: np.ndarray) -> np.ndarray:
        k = np.clip(((t - hours[0]) // HOUR_S).astype(int), 0, len(values) - 1)
        area: np.ndarray = cumulative[k] + values[k] * (t - hours[k])
        return area

    means = (integral(candidates + duration_s) - integral(candidates)) / duration_s
    now_ci = float(means[0])
    for i in np.lexsort((candidates, means)):
        start = float(candidates[i])
        if fits is None or fits(start, start + duration_s):
            return Plan(
                _from_epoch(start), _from_epoch(start + duration_s), now, deadline_at, forecast_name, float(means[i]), now_ci
            )
    return run_now("no capacity free in any window before the deadline; running now", now_ci, now_ci)
