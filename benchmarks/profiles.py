"""Profiles benchmark: cold ingest + summary vs HolisticTraceAnalysis and json.load, the warm
Parquet reopen, peak memory, and the CLI against `import torch`. Same-run ratios.

    .venv/bin/python benchmarks/profiles.py [TRACE] [--repeat N] [--no-hta]
    .venv/bin/python benchmarks/profiles.py scale [--only big,cpu,ranks,cli]   # issue 23: see profiles_scale.py

TRACE defaults to data/traces/train_a100_rank0.json.gz (109k events). Targets (issue 7):
cold ≥ 5× faster than HTA's load and no slower than json.load; warm ≥ 20× faster than cold;
peak ingest memory ≤ 3× the uncompressed JSON; `workbench profiles summary` faster than
`python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.profiles.table import open_table


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _interleaved(fns: dict, repeat: int) -> dict[str, dict[str, float]]:
    """Run each candidate once per round, round after round, so that load from other processes
    on a shared machine falls on all of them alike; keep wall and CPU time of every run."""
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            runs[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return {k: {"min": min(w for w, _ in v), "median": statistics.median(w for w, _ in v),
                "cpu": min(c for _, c in v)} for k, v in runs.items()}


def _rss_probe(trace: Path) -> tuple[int, int]:
    """Peak RSS growth (bytes) of a fresh process during one cold ingest + summary."""
    code = f"""
import resource, sys, shutil, tempfile, pathlib
sys.path.insert(0, {str(ROOT)!r})
from workbench.profiles.table import open_table
import pyarrow.parquet, pandas, numpy, msgspec
d = pathlib.Path(tempfile.mkdtemp()); p = d / pathlib.Path({str(trace)!r}).name
shutil.copy({str(trace)!r}, p)
open_table(pathlib.Path({str(ROOT / 'data/traces/compare_base.json.gz')!r}), cache=False)  # warm the code paths
import gc; gc.collect()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS:")
t = open_table(p)
after = status("VmHWM:")
print(before * 1024, after * 1024)
shutil.rmtree(d)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = (int(x) for x in out.stdout.split())
    return before, after


def _cli_s(args: list[str], repeat: int) -> float:
    return _median_s(lambda: subprocess.run(args, capture_output=True, check=True), repeat)


def main() -> None:
    if sys.argv[1:2] == ["scale"]:  # the at-scale suite (millions of events, ranks) lives beside this file
        sys.argv.pop(1)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from profiles_scale import main as scale

        scale()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", default=str(ROOT / "data/traces/train_a100_rank0.json.gz"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-hta", action="store_true", help="skip HolisticTraceAnalysis")
    ap.add_argument("--no-cli", action="store_true", help="skip the subprocess timings")
    args = ap.parse_args()
    trace = Path(args.trace).resolve()
    raw = trace.read_bytes()
    size_json = len(gzip.decompress(raw)) if raw[:2] == b"\x1f\x8b" else len(raw)
    work = Path(tempfile.mkdtemp(prefix="wb-bench-profiles-"))
    print(f"trace {trace.name}: {len(raw) / 1e6:.2f} MB on disk, {size_json / 1e6:.1f} MB JSON")
    try:
        open_table(ROOT / "data/traces/compare_base.json.gz", cache=False)  # imports and first-call setup

        copies = iter(range(10**6))

        def cold() -> None:
            d = work / f"cold{next(copies)}"
            d.mkdir()
            shutil.copy(trace, d / trace.name)
            t = open_table(d / trace.name)
            assert not t.from_cache and t.meta["summary"]["events"] > 0

        warm_dir = work / "warm"
        warm_dir.mkdir()
        shutil.copy(trace, warm_dir / trace.name)
        open_table(warm_dir / trace.name)

        def warm() -> None:
            t = open_table(warm_dir / trace.name)
            assert t.from_cache

        def stdlib() -> None:
            with gzip.open(trace, "rt") if raw[:2] == b"\x1f\x8b" else open(trace) as fh:
                json.load(fh)

        candidates = {"cold": cold, "cold_nocache": lambda: open_table(trace, cache=False), "json": stdlib}
        if not args.no_hta:
            try:
                logging.disable(logging.WARNING)
                from hta.trace_analysis import TraceAnalysis

                candidates["hta"] = lambda: TraceAnalysis(trace_files={0: str(trace)}, trace_dir="/")
            except Exception as exc:  # noqa: BLE001 - HTA may not run with this pandas
                print(f"HolisticTraceAnalysis could not run: {type(exc).__name__}: {exc}")
        r = _interleaved(candidates, args.repeat)
        r.update(_interleaved({"warm": warm}, max(20, args.repeat)))
        tracemalloc.start()
        open_table(trace, cache=False)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_before, rss_after = _rss_probe(trace)

        def line(label: str, key: str) -> None:
            v = r[key]
            print(f"{label:45s} min {v['min'] * 1000:8.1f} ms   median {v['median'] * 1000:8.1f} ms   cpu {v['cpu'] * 1000:8.1f} ms")

        print(f"{args.repeat} interleaved rounds (warm: {max(20, args.repeat)}); wall min, wall median, CPU-time min:")
        line("cold ingest + summary (+ Parquet write)", "cold")
        line("cold ingest + summary (no cache write)", "cold_nocache")
        line("warm reopen from Parquet", "warm")
        line("json.load (stdlib, gzip)", "json")
        if "hta" in r:
            line("HolisticTraceAnalysis TraceAnalysis load", "hta")
        print("same-run ratios (wall min | wall median | CPU):")

        def ratio(label: str, num: str, den: str, target: str) -> None:
            a, b = r[num], r[den]
            print(f"  {label:26s} = {a['min'] / b['min']:6.1f}x | {a['median'] / b['median']:6.1f}x | "
                  f"{a['cpu'] / b['cpu']:6.1f}x  ({target})")

        if "hta" in r:
            ratio("HTA load / cold", "hta", "cold", "target >= 5")
        ratio("json.load / cold", "json", "cold", "target >= 1")
        ratio("cold / warm", "cold", "warm", "target >= 20")
        print(f"  peak traced memory / JSON  = {traced_peak / size_json:6.2f}x  ({traced_peak / 1e6:.0f} MB; target <= 3)")
        print(f"  peak RSS growth / JSON     = {(rss_after - rss_before) / size_json:6.2f}x  "
              f"({(rss_after - rss_before) / 1e6:.0f} MB over a {rss_before / 1e6:.0f} MB process, cold ingest with cache write)")

        if not args.no_cli:
            cli_dir = work / "cli"
            cli_dir.mkdir()
            shutil.copy(trace, cli_dir / trace.name)
            wb_cmd = [sys.executable, "-m", "workbench", "profiles", "summary", str(cli_dir / trace.name), "--json"]
            env_home = work / "home"
            os.environ["WORKBENCH_HOME"] = str(env_home)
            t0 = time.perf_counter()
            subprocess.run(wb_cmd, capture_output=True, check=True)
            cli_cold = time.perf_counter() - t0
            cli_warm = _cli_s(wb_cmd, args.repeat)
            torch_s = _cli_s([sys.executable, "-c", "import torch"], args.repeat)
            print(f"CLI summary cold {cli_cold * 1000:.0f} ms, warm {cli_warm * 1000:.0f} ms; "
                  f"python -c 'import torch' {torch_s * 1000:.0f} ms")
            print(f"  import torch / CLI cold   = {torch_s / cli_cold:6.2f}x  (target >= 1)")
            print(f"  import torch / CLI warm   = {torch_s / cli_warm:6.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
