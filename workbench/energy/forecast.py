"""The planner's default forecast of a grid's carbon intensity: a blend fitted on the series' own past.

Why not persistence alone. "The same hour yesterday" is a good forecast where the day repeats
(solar-heavy CISO: the plan under it cuts 22.7 % of the deferrable work's emissions, 96 % of what
a perfect forecast cuts) and a poor one where it does not: on hydro-dominated BPAT it cut 0.9 %
of a possible 5.4 %, on PJM 3.7 % of 4.3 % (`benchmarks/carbon.py`, 2022 series, the week in
the middle of the year). There the level of the last hours says more than yesterday's shape.

The model. For every lead L = 1 … `MAX_LEAD_H` hours after the last observed hour t, a linear
regression (ridge, numpy) of the value at t + L on

    the last observed value y[t]                    (the level persists for a few hours)
    the mean of the last 24 hours                   (the level of the day)
    the same hour on the last observed day          (the daily shape)
    with 9+ days of history, also:
      the same hour a week before                   (the weekly shape)
      the mean of the same hour over the last 7 days  (a daily shape that one odd day does not bend)
    a constant

fitted on the `HISTORY_DAYS` days before t, so each lead gets its own weights: short leads lean on
the level, long ones on the daily shape, and a grid whose days repeat gets yesterday's value back.
Leads past `MAX_LEAD_H` reuse the forecast of the same hour of the last fitted day.

Falling back. Before it is used, the forecast is backtested on the week before t: for every hour
of that week, where would a one-hour job with a 24-hour window have started under it, and how
much carbon would that have saved against running at once, by the recorded values. Persistence
is backtested the same way; the one that saved more is used, and when neither saved anything
(`fallback` says so) the planner runs the job now: a forecast that has not beaten run-now on its
own recent past is not trusted with a deferral.

No look-ahead: everything is computed from `values[:k]`, the hours observed before the current
one (the current hour is not over, so it is not observed); a forecast made at hour k is the same
whatever the series holds from k on (tested).

Cost. The fit is cached per current hour by `CarbonSignal`; the first plan of an hour pays for it.
Every lead's normal equations are built from whole columns: each lead-dependent feature is the
series shifted by an offset, i.e. a row of one sliding-window view, so a fit is a few row gathers
and matrix products rather than a (lead, origin, feature) tensor. Measured on a busy, shared
2-core machine (December 2026, 8 grids × 7 weeks of origins): 1.4-3.4 ms per fit against
2.1-4.8 ms before, forecasts equal to 1e-10; in `benchmarks/carbon.py` one plan takes 0.20-0.33 ms
on average, but the worst plan (one that refits, preempted by other load) is still 2-21 ms, over
the 10 ms budget on some grids. Fitting each hour ahead of the first plan (when its data arrives)
would take the fit off the plan; that is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HISTORY_DAYS = 28  # days of past hours the weights are fitted on
MAX_LEAD_H = 48  # leads fitted one by one; later hours repeat the last fitted day
BACKTEST_H = 7 * 24  # past origins the forecast is judged on before it is trusted
WINDOW_H = 24  # the backtest's job: one hour, to start within this many hours
MIN_HISTORY_H = 3 * 24 + MAX_LEAD_H  # less than this: persistence (or run-now with under a day)
RIDGE = 1e-3  # relative ridge penalty: keeps the weights finite on constant stretches


@dataclass(frozen=True)
class Fitted:
    """A forecast made at the start of hour `k` (index into the series) from `values[:k]`.

    `values[i]` is the forecast for hour `k + i` (i = 0 is the current, unobserved hour), for
    `MAX_LEAD_H` hours; `method` is what made it ("blend", "persistence" or "run-now") and
    `fallback` says why the planner should not defer on it (None when it may)."""

    k: int
    values: np.ndarray
    method: str
    fallback: str | None
    backtest_gain: dict[str, float]  # mean gCO2/kWh the backtest's job saved against run-now, per method

    def at_leads(self, lead_h: np.ndarray) -> np.ndarray:
        """Forecasts for hours `k + lead_h` (lead 0 = the current hour); past `MAX_LEAD_H`, the same
        hour of the last fitted day."""
        lead = np.asarray(lead_h, dtype=np.int64)
        lead = np.where(lead >= MAX_LEAD_H, MAX_LEAD_H - 24 + (lead - MAX_LEAD_H) % 24, lead)
        return self.values[np.clip(lead, 0, MAX_LEAD_H - 1)]


def _columns(y: np.ndarray, cum: np.ndarray, profile: np.ndarray, first: int, count: int, leads: np.ndarray,
             weekly: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features for the values at origin + lead, origins `first … first + count − 1`, known at
    each origin: those that do not depend on the lead, (f0, count) — the last value, the mean of
    the last 24 hours, the constant — and those that do, (f1, lead, count) — the same hour on the
    last observed day and, weekly, a week before and the 7-day profile; and the targets (lead, count).

    Each lead-dependent row is a window of the series shifted by a lead-dependent offset, so it is
    a row of one sliding-window view: a few row gathers instead of one gather per (lead, origin)."""
    same = leads - 24 * ((leads + 23) // 24)  # ≤ 0: the same hour on the last observed day
    windows = np.lib.stride_tricks.sliding_window_view(y, count)
    origin = np.arange(first, first + count)
    fixed = np.stack((y[origin], (cum[origin + 1] - cum[origin - 23]) / 24.0, np.ones(count)))
    shifted = [windows[first + same]]
    if weekly:
        shifted.append(windows[first + leads - 168 * ((leads + 167) // 168)])
        shifted.append(np.lib.stride_tricks.sliding_window_view(profile, count)[first + same])
    target = windows[first + leads] if first + int(leads.max()) < len(windows) else None
    return fixed, np.stack(shifted), target  # type: ignore[return-value]


def _backtest(y: np.ndarray, forecasts: np.ndarray, origins: np.ndarray) -> float:
    """Mean gCO2/kWh saved against running at once by a one-hour job started at the forecast's
    lowest hour of the next `WINDOW_H` (ties: earliest), judged by the recorded values."""
    pick = forecasts.argmin(axis=1)
    return float(np.mean(y[origins + 1] - y[origins + 1 + pick]))


def fit_forecast(values: np.ndarray, k: int) -> Fitted:
    """The forecast made at the start of hour `k` from `values[:k]` (see the module docstring)."""
    # Only the hours the fit can reach: its samples, their lags (a week) and the longest lead.
    y = np.asarray(values[max(0, k - HISTORY_DAYS * 24 - MAX_LEAD_H - 168 - 24):k], dtype=float)
    t = len(y) - 1  # the last observed hour
    leads = np.arange(1, MAX_LEAD_H + 1)  # from t: lead 1 is hour k
    if t < 24:
        flat = np.full(MAX_LEAD_H, y[-1] if len(y) else 0.0)
        return Fitted(k, flat, "run-now", "less than a day of history: no forecast to defer on", {})
    persistence = y[t + leads - 24 * ((leads + 23) // 24)]
    if t < MIN_HISTORY_H:
        return Fitted(k, persistence, "persistence", None, {})
    weekly = t >= 168 + MAX_LEAD_H + 2 * 24
    lag = 167 if weekly else 23
    cum = np.concatenate(([0.0], np.cumsum(y)))
    profile = np.zeros_like(y)
    if weekly:  # the mean of the same hour over the last 7 observed days
        profile[144:] = sum(y[144 - 24 * j: len(y) - 24 * j] for j in range(7)) / 7.0
    n = min(HISTORY_DAYS * 24, t - MAX_LEAD_H - lag + 1)
    first = t - MAX_LEAD_H - n + 1
    fixed, shifted, target = _columns(y, cum, profile, first, n, leads, weekly)
    # The normal equations of every lead at once, as dot products of whole columns: the fixed
    # columns' products are shared by all leads; those with a shifted one are one per lead.
    f0, f1 = len(fixed), len(shifted)
    xtx = np.empty((MAX_LEAD_H, f0 + f1, f0 + f1))
    xtx[:, :f0, :f0] = fixed @ fixed.T
    cross = np.einsum("fn,sln->lfs", fixed, shifted)
    xtx[:, :f0, f0:] = cross
    xtx[:, f0:, :f0] = cross.transpose(0, 2, 1)
    xtx[:, f0:, f0:] = np.einsum("aln,bln->lab", shifted, shifted)
    xty = np.concatenate(((fixed @ target.T).T, np.einsum("sln,ln->ls", shifted, target)), axis=1)
    features = f0 + f1
    penalty = RIDGE * np.trace(xtx, axis1=1, axis2=2)[:, None, None] / features * np.eye(features)
    weights = np.linalg.solve(xtx + penalty, xty[..., None])[..., 0]  # (lead, feature)
    now_fixed, now_shifted, _ = _columns(y, cum, profile, t, 1, leads, weekly)
    blend = np.maximum(now_fixed[:, 0] @ weights[:, :f0].T + np.einsum("sl,ls->l", now_shifted[..., 0], weights[:, f0:]), 0.0)
    # Backtest on the last week's origins whose whole window is observed.
    back = np.arange(max(lag, t - WINDOW_H - BACKTEST_H + 1), t - WINDOW_H + 1)
    w_leads = leads[:WINDOW_H]
    b_fixed, b_shifted, _ = _columns(y, cum, profile, int(back[0]), len(back), w_leads, weekly)
    w = weights[:WINDOW_H]
    back_blend = (w[:, :f0] @ b_fixed).T + np.einsum("slb,ls->bl", b_shifted, w[:, f0:])
    gains = {
        "blend": _backtest(y, back_blend, back),
        "persistence": _backtest(y, b_shifted[0].T, back),
    }
    method = max(gains, key=lambda m: (gains[m], m == "blend"))
    chosen = blend if method == "blend" else persistence
    if gains[method] <= 0:
        why = (f"over the last {len(back)} hours neither the blend ({gains['blend']:+.1f} gCO2/kWh) nor persistence "
               f"({gains['persistence']:+.1f}) beat running at once; running now")
        return Fitted(k, chosen, "run-now", why, gains)
    return Fitted(k, chosen, method, None, gains)
