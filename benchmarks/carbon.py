"""Carbon-aware scheduling of deferrable work: replay the Alibaba GPU tasks over a week of each grid.

    python benchmarks/carbon.py [--signal FILE.csv ...] [--deferrable 0.3] [--json]

For each carbon signal (default: the eight built-in 2022 series in data/carbon/),
the GPU tasks of `data/cluster/openb_pod_list_default.csv` are replayed over a week of the series
on the catalog-known GPU pools of `data/cluster/openb_node_list_gpu_node.csv`, with a seeded share
of them deferrable (deadlines 6-24 h after arrival). Printed per signal, for the feasible
deferrable share: total gCO2e when those tasks run at once ("run now"), when the planner of
`workbench.energy.schedule` starts them under the default forecaster (`--forecaster`, default the
fitted blend of `workbench.energy.forecast`), under plain persistence (yesterday's hour: the old
default, a same-run baseline) and under the recorded values (perfect forecast); deadlines missed;
the mean added wait; the share of the perfect forecast's cut that the plan captures; the time to
plan one job under the default forecaster (its fit included when the hour is not cached); and the
same-run ratios. Every assumption (arrivals, power = TDP x GPU share, fleet, capacity) is written out in
`workbench/energy/replay.py`.

`--json` prints one object keyed by each signal file's name, each value
`{"forecaster", "run_now_g", "aware_persistence_g", "aware_perfect_g", "deadlines_missed", "mean_added_wait_s"}`
(`aware_persistence_g`: the plan under the default forecaster, named in `forecaster`).
Files with gaps, repeated or backward timestamps, negative or absurd values are repaired
(interpolated, sorted, bad values treated as missing) and each repair is reported on stderr; a
file that cannot be used at all gets `{"error": "..."}` and the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
try:
    import pandas  # noqa: F401
except ImportError:  # run by a Python without the project's packages: use the project's .venv
    _venv = ROOT / ".venv"
    if (_venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != _venv.resolve():
        import os

        os.execv(str(_venv / "bin" / "python"), [str(_venv / "bin" / "python"), *sys.argv])
    raise

from workbench.energy.replay import load_fleet_pools, load_tasks, replay  # noqa: E402
from workbench.energy.signal import BUILTIN_ZONES, DEFAULT_FORECAST, FORECASTS, builtin_path, read_csv  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402


def _capture(aware_g: float, r: object) -> float:
    """The share of the perfect forecast's cut that a plan gets (NaN where perfect cuts nothing)."""
    cut = r.run_now_g - r.aware_perfect_g  # type: ignore[attr-defined]
    return (r.run_now_g - aware_g) / cut if cut > 0 else float("nan")  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signal", action="append", type=Path, help="carbon signal CSV (timestamp, avg_CI); repeatable")
    parser.add_argument("--deferrable", type=float, default=0.3, help="share of tasks that are deferrable (default 0.3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by signal file name")
    parser.add_argument("--seed", type=int, default=0, help="seed for the deferrable draw, deadlines and models")
    parser.add_argument("--days", type=float, default=7.0, help="length of the replay window (default 7 days)")
    parser.add_argument("--week-start", type=dt.date.fromisoformat, default=None,
                        help="first day of the window (UTC, YYYY-MM-DD); default: the week in the middle of each series")
    parser.add_argument("--forecaster", default=DEFAULT_FORECAST, choices=[f for f in FORECASTS if f != "perfect"],
                        help=f"the planner's forecast (default {DEFAULT_FORECAST})")
    parser.add_argument("--tasks", type=Path, default=ROOT / "data/cluster/openb_pod_list_default.csv")
    parser.add_argument("--fleet", type=Path, default=ROOT / "data/cluster/openb_node_list_gpu_node.csv")
    args = parser.parse_args(argv)
    if not 0 <= args.deferrable <= 1:
        parser.error(f"--deferrable {args.deferrable} must be between 0 and 1")

    began = time.perf_counter()
    tasks = load_tasks(args.tasks)
    fleet = load_fleet_pools(args.fleet)
    signals = args.signal or [builtin_path(zone) for zone in BUILTIN_ZONES]
    start = dt.datetime.combine(args.week_start, dt.time(), dt.timezone.utc) if args.week_start else None

    results: dict[str, dict[str, object]] = {}
    failed = False
    for path in signals:
        key = path.name if path.name not in results else str(path)
        try:
            signal = read_csv(path, repair=True)
            for issue in signal.issues:
                print(f"{path.name}: {issue}", file=sys.stderr)
            result = replay(signal, tasks, fleet, share=args.deferrable, seed=args.seed, days=args.days, start=start,
                            forecaster=args.forecaster)
        except WorkbenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            results[key] = {"error": str(exc)}
            failed = True
            continue
        results[key] = {"result": result}

    if args.json:
        print(json.dumps({k: v["result"].contract() if "result" in v else v for k, v in results.items()}, indent=2))
        return 1 if failed else 0

    print(f"tasks: {len(tasks.duration_s):,} GPU tasks replayed; left out: "
          + ", ".join(f"{v:,} {k}" for k, v in tasks.dropped.items() if v))
    print(f"fleet: {', '.join(f'{m} {int(c)} GPUs @ {t:g} W' for m, c, t in zip(fleet.models, fleet.capacity, fleet.tdp_w, strict=True))}"
          + (f"; left out (no TDP): {', '.join(f'{m} {c} GPUs' for m, c in fleet.left_out.items())}" if fleet.left_out else ""))
    print(f"deferrable share {args.deferrable:.0%}, deadlines 6-24 h after arrival, seed {args.seed}\n")
    header = (f"{'signal':<24} {'window (UTC)':<23} {'deferrable':>10} {'run now kg':>10} {args.forecaster + ' kg':>10} {'ratio':>6} "
              f"{'yday kg':>8} {'ratio':>6} {'perfect kg':>10} {'ratio':>6} {'capture':>7} {'yday':>6} {'missed':>6} {'wait h':>6} {'plan ms':>7} {'max':>6}")
    print(header)
    print("-" * len(header))
    for key, value in results.items():
        if "result" not in value:
            print(f"{key:<24} error: {value['error']}")
            continue
        r = value["result"]
        day_ahead = r.aware_day_ahead_g / r.run_now_g if r.run_now_g else float("nan")
        print(f"{key:<24} {r.window_start:%Y-%m-%d}..{r.window_end:%Y-%m-%d}  {r.deferrable:>10,} "
              f"{r.run_now_g / 1e3:>10.1f} {r.aware_persistence_g / 1e3:>10.1f} {r.persistence_ratio:>6.3f} "
              f"{r.aware_day_ahead_g / 1e3:>8.1f} {day_ahead:>6.3f} {r.aware_perfect_g / 1e3:>10.1f} {r.perfect_ratio:>6.3f} "
              f"{_capture(r.aware_persistence_g, r):>7.1%} {_capture(r.aware_day_ahead_g, r):>6.1%} "
              f"{r.deadlines_missed:>6} {r.mean_added_wait_s / 3600:>6.2f} {r.plan_ms_mean:>7.2f} {r.plan_ms_max:>6.1f}")
    print("(capture: the share of the perfect forecast's cut the plan gets, for the default forecaster and for yesterday's hour;"
          " plan ms: one plan under the default forecaster, mean and max, wall clock on this machine)\n")
    for key, value in results.items():
        if "result" in value:
            r = value["result"]
            print(f"{key}: {r.forecaster} saves {1 - r.persistence_ratio:.1%}, perfect {1 - r.perfect_ratio:.1%} against run-now; "
                  f"{r.infeasible_deadlines} deferrable tasks longer than their deadline ran at once (left out); "
                  f"forecast fallbacks {r.fallbacks}; peak pool use {r.peak_utilization:.0%}; {r.elapsed_s:.2f} s")
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
