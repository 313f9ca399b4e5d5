"""Replay a cluster's tasks against a carbon signal: run-now vs carbon-aware start times.

This is the engine of `benchmarks/carbon.py` and of the notebook's week-long replay. Assumptions,
all deliberate and all visible in `ReplayResult`:

- **Tasks**: the Alibaba GPU trace (`openb_pod_list_default.csv`). Duration = deletion_time -
  creation_time (seconds). Rows whose times do not parse, whose duration is not positive, or that
  ask for no GPU (the catalog has no CPU power figure) are left out and counted. GPU demand is
  `gpu_milli / 1000` of one GPU when `num_gpu == 1`, else `num_gpu` whole GPUs.
- **Arrivals**: the trace's clock is relative and 90 % of its tasks arrive in its last 40 days, so
  tasks keep their trace order and arrive evenly spread over the replay window (a week of the
  grid's series, by default the week in the middle of the series).
- **Fleet**: the trace's nodes (`openb_node_list_gpu_node.csv`) whose GPU model the catalog
  knows (T4, P100, V100 16/32 GB, A10: the G1-G3 models are undisclosed, so they have no TDP).
  Each model is one pool of GPU capacity; a task is assigned a model at random (seeded), weighted
  by the pool's size, among models with a node big enough for its GPU count. The same task runs
  on the same model in every scenario, so the scenarios differ only in when tasks run.
- **Power**: catalog TDP of the model x the task's GPU demand, constant over the run (an upper
  bound: real GPUs rarely sit at TDP; the ratios between scenarios do not depend on it).
- **Deferrable share**: a seeded `share` of the tasks is deferrable, each with a deadline drawn
  uniformly 6-24 h after its arrival. A task longer than its deadline window cannot meet it
  whatever the plan (the planner refuses it); it runs at arrival, is counted in
  `infeasible_deadlines` and left out of the deferrable grams. The grams compare the same
  feasible deferrable tasks in all three scenarios.
- **Capacity**: tasks that are not deferrable run at arrival and are booked first (they have
  priority); deferrable tasks are then planned in arrival order and booked into what capacity
  remains (60-second bins); a start whose run would overfill the pool is never chosen. When no
  start before the deadline fits, the task falls back to running at arrival like a task that is
  not deferrable (counted in `fallbacks`; the replay, like the run-now baseline, has no queue).
- **Carbon**: TDP x demand x the series' intensity over the run (hour by hour). Outside the series
  (a run past its end) the nearest recorded hour is used for accounting; the planner's forecast
  has no value there, so it falls back to running now, as for any bad forecast.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.energy.schedule import HOUR_S, plan_start
from workbench.energy.signal import DEFAULT_FORECAST, FORECASTS, CarbonSignal
from workbench.errors import InvalidRequest
from workbench.inventory.catalog import lookup

DAY_S = 86400.0
BIN_S = 60.0
DEADLINE_H = (6.0, 24.0)


@dataclass(frozen=True)
class Tasks:
    """GPU tasks in trace order: duration (s) and GPU demand (GPUs), plus what was left out."""

    duration_s: np.ndarray
    gpus: np.ndarray
    num_gpu: np.ndarray
    dropped: dict[str, int]


@dataclass(frozen=True)
class Fleet:
    """GPU pools by model: capacity (GPUs), largest node (GPUs) and TDP (W)."""

    models: list[str]
    capacity: np.ndarray
    largest_node: np.ndarray
    tdp_w: np.ndarray
    left_out: dict[str, int]


@dataclass
class ReplayResult:
    signal: str
    window_start: dt.datetime
    window_end: dt.datetime
    tasks: int
    deferrable: int
    infeasible_deadlines: int
    run_now_g: float
    aware_persistence_g: float  # the plan under `forecaster` (the default forecaster: the name is the contract's)
    aware_perfect_g: float
    deadlines_missed: int
    mean_added_wait_s: float
    mean_added_wait_perfect_s: float
    fallbacks: dict[str, int]
    peak_utilization: float
    elapsed_s: float
    forecaster: str = DEFAULT_FORECAST
    aware_day_ahead_g: float = math.nan  # the plan under plain persistence (yesterday's hour), the same-run baseline
    plan_ms_mean: float = math.nan  # wall time of one plan under `forecaster`, fit included when not cached
    plan_ms_max: float = math.nan
    # per deferrable task, for plots: arrival, start under each plan (UNIX seconds), power (W)
    detail: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def persistence_ratio(self) -> float:
        return self.aware_persistence_g / self.run_now_g if self.run_now_g else float("nan")

    @property
    def perfect_ratio(self) -> float:
        return self.aware_perfect_g / self.run_now_g if self.run_now_g else float("nan")

    def contract(self) -> dict[str, Any]:
        """The figures `benchmarks/carbon.py --json` prints per signal."""
        return {
            "forecaster": self.forecaster,
            "run_now_g": self.run_now_g,
            "aware_persistence_g": self.aware_persistence_g,
            "aware_perfect_g": self.aware_perfect_g,
            "deadlines_missed": self.deadlines_missed,
            "mean_added_wait_s": self.mean_added_wait_s,
        }


def load_tasks(path: str | Path) -> Tasks:
    """The trace's GPU tasks, odd rows left out and counted (see the module docstring)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidRequest(f"{path}: cannot read the task list ({exc})") from None
    need = ["creation_time", "deletion_time", "num_gpu", "gpu_milli"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InvalidRequest(f"{path}: no column {', '.join(missing)}; an Alibaba pod list has {', '.join(need)}")
    num = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in need}
    duration = num["deletion_time"] - num["creation_time"]
    unreadable = ~np.isfinite(duration) | ~np.isfinite(num["num_gpu"])
    not_positive = ~unreadable & ~(duration > 0)
    no_gpu = ~unreadable & ~not_positive & ~(num["num_gpu"] >= 1)
    milli = np.where(np.isfinite(num["gpu_milli"]) & (num["gpu_milli"] > 0), np.minimum(num["gpu_milli"], 1000), 1000)
    keep = ~(unreadable | not_positive | no_gpu)
    order = np.argsort(num["creation_time"][keep], kind="stable")
    gpus = np.where(num["num_gpu"] == 1, milli / 1000.0, num["num_gpu"])[keep][order]
    return Tasks(
        duration_s=duration[keep][order],
        gpus=gpus,
        num_gpu=num["num_gpu"][keep][order].astype(int),
        dropped={
            "unreadable times": int(unreadable.sum()),
            "duration not positive": int(not_positive.sum()),
            "no GPU (CPU only)": int(no_gpu.sum()),
        },
    )


def load_fleet_pools(path: str | Path) -> Fleet:
    """GPU pools of the node list's models that the catalog knows (with a TDP)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidRequest(f"{path}: cannot read the node list ({exc})") from None
    if not {"gpu", "model"} <= set(frame.columns):
        raise InvalidRequest(f"{path}: needs columns gpu, model (an Alibaba node list); found {', '.join(frame.columns)}")
    frame = frame[pd.to_numeric(frame["gpu"], errors="coerce") > 0]
    models, capacity, largest, tdp, left_out = [], [], [], [], {}
    for model, group in frame.groupby("model"):
        spec_tdp = lookup(str(model)).tdp_w
        gpus = pd.to_numeric(group["gpu"]).astype(int)
        if spec_tdp is None:
            left_out[str(model)] = int(gpus.sum())
            continue
        models.append(str(model))
        capacity.append(float(gpus.sum()))
        largest.append(int(gpus.max()))
        tdp.append(float(spec_tdp))
    if not models:
        raise InvalidRequest(f"{path}: no GPU model the catalog knows; the replay needs a TDP per model")
    return Fleet(models, np.array(capacity), np.array(largest), np.array(tdp), left_out)


def replay_window(signal: CarbonSignal, days: float = 7.0, start: dt.datetime | None = None) -> tuple[float, float]:
    """[start, end) in UNIX seconds: `start` if given, else `days` in the middle of the series (a day of history kept)."""
    length = signal.hours * HOUR_S
    span = min(days * DAY_S, max(HOUR_S, length - 2 * min(DAY_S, length / 4)))
    if start is not None:
        begin = start.timestamp()
    else:
        middle = signal.hour0_s + length / 2
        begin = max(signal.hour0_s + min(DAY_S, length / 4), math.floor((middle - span / 2) / DAY_S) * DAY_S)
    return begin, begin + span


def _accounting_ci(signal: CarbonSignal) -> np.ndarray:
    return np.asarray(signal.values, dtype=float)


def _integral(signal: CarbonSignal, cumulative: np.ndarray, t: np.ndarray) -> np.ndarray:
    """∫ CI dt (gCO2/kWh x s) from the series start to t, holding the edge values outside it."""
    n = signal.hours
    offset = np.asarray(t, dtype=float) - signal.hour0_s
    k = np.clip(np.floor(offset / HOUR_S).astype(np.int64), 0, n - 1)
    before = np.minimum(offset, 0.0) * signal.values[0]
    inside = cumulative[k] + signal.values[k] * (np.clip(offset, 0, n * HOUR_S) - k * HOUR_S)
    after = np.maximum(offset - n * HOUR_S, 0.0) * signal.values[-1]
    total: np.ndarray = before + inside + after
    return total


def replay(
    signal: CarbonSignal,
    tasks: Tasks,
    fleet: Fleet,
    *,
    share: float = 0.3,
    seed: int = 0,
    days: float = 7.0,
    start: dt.datetime | None = None,
    forecaster: str = DEFAULT_FORECAST,
) -> ReplayResult:
    """Run-now vs carbon-aware (under `forecaster`, under persistence and under the perfect
    forecast) for the deferrable share."""
    if not 0 <= share <= 1:
        raise InvalidRequest(f"deferrable share {share!r} must be between 0 and 1")
    if forecaster not in FORECASTS or forecaster == "perfect":
        raise InvalidRequest(f"forecaster {forecaster!r}; valid: {', '.join(f for f in FORECASTS if f != 'perfect')}")
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = len(tasks.duration_s)
    t_begin, t_end = replay_window(signal, days, start)
    arrival = t_begin + (np.arange(n) + 0.5) / max(n, 1) * (t_end - t_begin)
    deferrable = rng.random(n) < share
    deadline = arrival + rng.uniform(*DEADLINE_H, n) * HOUR_S
    feasible = deferrable & (tasks.duration_s <= deadline - arrival)
    # assign a model: weighted by capacity among pools with a node big enough for the task
    draws = rng.random(n)
    pool = np.empty(n, dtype=int)
    for i in range(n):
        ok = fleet.largest_node >= tasks.num_gpu[i]
        if not ok.any():
            ok = fleet.largest_node == fleet.largest_node.max()
        weights = np.where(ok, fleet.capacity, 0.0)
        pool[i] = int(np.searchsorted(np.cumsum(weights) / weights.sum(), draws[i], side="right"))
    pool = np.minimum(pool, len(fleet.models) - 1)
    power_w = fleet.tdp_w[pool] * tasks.gpus

    cumulative = np.concatenate(([0.0], np.cumsum(_accounting_ci(signal) * HOUR_S)))

    def grams(starts: np.ndarray, idx: np.ndarray) -> float:
        ends = starts + tasks.duration_s[idx]
        ci_s = _integral(signal, cumulative, ends) - _integral(signal, cumulative, starts)
        return float(np.sum(power_w[idx] * ci_s) / 3.6e6)  # W x (g/kWh x s) / 3.6e6 = g

    horizon = t_end + DEADLINE_H[1] * HOUR_S + HOUR_S
    bins = int(math.ceil((horizon - t_begin) / BIN_S))

    def bin_range(a: float, b: float) -> tuple[int, int]:
        lo = max(0, int((a - t_begin) // BIN_S))
        hi = min(bins, max(lo + 1, int(math.ceil((b - t_begin) / BIN_S))))
        return lo, hi

    def booked_fixed() -> np.ndarray:
        occupancy = np.zeros((len(fleet.models), bins))
        for i in np.flatnonzero(~feasible):
            lo, hi = bin_range(arrival[i], arrival[i] + tasks.duration_s[i])
            occupancy[pool[i], lo:hi] += tasks.gpus[i]
        return occupancy

    idx = np.flatnonzero(feasible)
    run_now_g = grams(arrival[idx], idx)
    # peak use of the baseline (everything at arrival)
    baseline = booked_fixed()
    for i in idx.tolist():
        lo, hi = bin_range(arrival[i], arrival[i] + tasks.duration_s[i])
        baseline[pool[i], lo:hi] += tasks.gpus[i]
    peak = float(np.max(baseline / fleet.capacity[:, None]))

    starts: dict[str, np.ndarray] = {}
    fallbacks: dict[str, int] = {}
    plan_s: list[float] = []
    for kind in dict.fromkeys((forecaster, "persistence", "perfect")):
        occupancy = booked_fixed()
        chosen = np.empty(len(idx))
        fell_back_each = np.zeros(len(idx), dtype=bool)
        fell_back = 0
        for j, i in enumerate(idx.tolist()):
            p, need, cap = pool[i], tasks.gpus[i], fleet.capacity[pool[i]]

            def fits(a: float, b: float, p: int = p, need: float = need, cap: float = cap, used: np.ndarray = occupancy) -> bool:
                lo, hi = bin_range(a, b)
                return bool(used[p, lo:hi].max() + need <= cap + 1e-9)

            now = dt.datetime.fromtimestamp(arrival[i], dt.timezone.utc)
            planning = time.perf_counter()
            plan = plan_start(
                now=now, duration_s=float(tasks.duration_s[i]),
                deadline=dt.datetime.fromtimestamp(deadline[i], dt.timezone.utc),
                forecast=signal.forecast(kind, arrival[i]), fits=fits, forecast_name=kind,
            )
            if kind == forecaster:
                plan_s.append(time.perf_counter() - planning)
            chosen[j] = plan.start.timestamp()
            fell_back_each[j] = plan.fallback is not None
            fell_back += plan.fallback is not None
            lo, hi = bin_range(chosen[j], chosen[j] + tasks.duration_s[i])
            occupancy[p, lo:hi] += need
        starts[kind] = chosen
        starts[f"fallback_{kind}"] = fell_back_each
        fallbacks[kind] = fell_back

    missed = int(sum(np.sum(starts[kind] + tasks.duration_s[idx] > deadline[idx] + 1e-6)
                     for kind in dict.fromkeys((forecaster, "persistence", "perfect"))))
    return ReplayResult(
        signal=signal.zone,
        window_start=dt.datetime.fromtimestamp(t_begin, dt.timezone.utc),
        window_end=dt.datetime.fromtimestamp(t_end, dt.timezone.utc),
        tasks=n,
        deferrable=len(idx),
        infeasible_deadlines=int(np.sum(deferrable & ~feasible)),
        run_now_g=run_now_g,
        aware_persistence_g=grams(starts[forecaster], idx),
        aware_perfect_g=grams(starts["perfect"], idx),
        deadlines_missed=missed,
        mean_added_wait_s=round(float(np.mean(starts[forecaster] - arrival[idx])), 3) if len(idx) else 0.0,
        mean_added_wait_perfect_s=round(float(np.mean(starts["perfect"] - arrival[idx])), 3) if len(idx) else 0.0,
        fallbacks=fallbacks,
        peak_utilization=peak,
        elapsed_s=time.perf_counter() - began,
        forecaster=forecaster,
        aware_day_ahead_g=grams(starts["persistence"], idx),
        plan_ms_mean=float(np.mean(plan_s)) * 1e3 if plan_s else 0.0,
        plan_ms_max=float(np.max(plan_s)) * 1e3 if plan_s else 0.0,
        detail={
            "arrival_s": arrival[idx],
            "deadline_s": deadline[idx],
            "duration_s": tasks.duration_s[idx],
            "power_w": power_w[idx],
            "start_persistence_s": starts[forecaster],  # the contract's name: the default forecaster's plan
            "start_perfect_s": starts["perfect"],
            "fallback_persistence": starts[f"fallback_{forecaster}"],
            "fallback_perfect": starts["fallback_perfect"],
        },
    )
