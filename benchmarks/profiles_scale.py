"""Profiles at scale (issue 23): large traces built by replicating data/traces with shifted
timestamps (under a temporary folder, never committed), each candidate in its own process under
`/usr/bin/time` (wall time and the peak RSS of the process tree: GNU time reports the largest
of the process and the descendants it waited for). Same-run ratios.

    .venv/bin/python benchmarks/profiles_scale.py [--only big,cpu,ranks,cli] [--repeat N] [--no-hta] [--keep DIR]

- big:   2.72M events (train_a100_rank0 x 25): cold ingest + summary vs HTA 0.5 load vs json.load;
         peak memory vs the JSON's size. Targets: >= 10x HTA, >= 3x json.load, peak <= 1x JSON.
- cpu:   218k events, CPU-heavy (diff_control_a100 x 2): in-process (alternated rounds in one
         process) vs HTA and json.load; `workbench profiles summary` as a command vs a process
         doing only json.load. Targets: >= 5x HTA, <= 0.7x json.load; command <= 1.0x.
- ranks: 3 ranks of ~0.9M events (sampled_rank0/1 x 186; rank 2 a renamed copy of rank 0):
         `workbench profiles ranks DIR --json` vs json.load of the three files one after another.
         Targets: <= 0.5x; no process above 1 GiB.
- cli:   `workbench profiles summary` of a 40 KB trace (startup and imports): target < 0.75 s,
         and `python -X importtime` of the command with no reading.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "data" / "traces"
PY = sys.executable


def replicate(src: Path, copies: int, out: Path, *, rank: int | None = None) -> tuple[int, int]:
    """Write `copies` copies of src's events, each shifted past the previous one, as plain JSON;
    returns (events, bytes). Written event by event group, so it never holds the large text."""
    doc = json.loads(gzip.decompress(src.read_bytes()))
    events = doc.pop("traceEvents")
    timed = [e for e in events if isinstance(e.get("ts"), int | float)]
    span = max(e["ts"] + (e.get("dur") or 0) for e in timed) - min(e["ts"] for e in timed) + 1000
    if rank is not None and isinstance(doc.get("distributedInfo"), dict):
        doc["distributedInfo"]["rank"] = rank
    head = orjson.dumps(doc)[:-1] + (b', "traceEvents": [' if len(doc) else b'"traceEvents": [')
    n = 0
    with out.open("wb") as fh:
        fh.write(head)
        for k in range(copies):
            shifted = []
            for e in events:
                if k and isinstance(e.get("ts"), int | float):
                    e = dict(e, ts=e["ts"] + k * span)
                shifted.append(e)
            blob = orjson.dumps(shifted)[1:-1]
            fh.write((b",\n" if k else b"\n") + blob.replace(b"},{", b"},\n{"))
            n += len(shifted)
        fh.write(b"\n]}")
    return n, out.stat().st_size


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall s, peak RSS bytes of the tree, stdout) of one command under /usr/bin/time."""
    out = subprocess.run(["/usr/bin/time", "-f", "@@ %e %M", *cmd], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {out.stderr[-2000:]}")
    line = [x for x in out.stderr.splitlines() if x.startswith("@@ ")][-1]
    wall, kib = line.split()[1:]
    return float(wall), int(kib) * 1024, out.stdout


def cpu_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall s, user + system CPU s) of one command."""
    out = subprocess.run(["/usr/bin/time", "-f", "@@ %e %U %S", *cmd], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {out.stderr[-2000:]}")
    wall, user, system = (float(x) for x in [x for x in out.stderr.splitlines() if x.startswith("@@ ")][-1].split()[1:])
    return wall, user + system


def py(code: str) -> list[str]:
    return [PY, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{code}"]


OURS = """
import time, tempfile, shutil
from workbench.profiles.table import open_table
d = tempfile.mkdtemp(); t0 = time.perf_counter()
t = open_table({path!r}, cache_dir=d)
print(time.perf_counter() - t0, t.meta["summary"]["events"]); shutil.rmtree(d)
"""
JSON = "import json, time\nt0 = time.perf_counter()\nfor p in {paths!r}:\n    json.load(open(p))\nprint(time.perf_counter() - t0)"
HTA = """
import logging, time; logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis
t0 = time.perf_counter(); TraceAnalysis(trace_files={{0: {path!r}}}, trace_dir="/"); print(time.perf_counter() - t0)
"""


def fmt(label: str, wall: float, rss: int, extra: str = "") -> None:
    print(f"  {label:48s} {wall:8.2f} s   peak RSS {rss / 2**20:8.0f} MiB {extra}")


def bench_big(work: Path, hta: bool) -> None:
    path = work / "big_train_x25.json"
    n, size = replicate(TRACES / "train_a100_rank0.json.gz", 25, path)
    print(f"big: {n:,} events, {size / 1e6:.0f} MB JSON ({path})")
    env = dict(os.environ, WORKBENCH_HOME=str(work / "home"))
    w_ours, m_ours, out = timed(py(OURS.format(path=str(path))), env)
    in_ours = float(out.split()[0])
    fmt("ours: open_table cold (ingest, summary, Parquet)", w_ours, m_ours, f"(in-process {in_ours:.2f} s)")
    w_json, m_json, out = timed(py(JSON.format(paths=[str(path)])), env)
    in_json = float(out.split()[0])
    fmt("json.load", w_json, m_json, f"(in-process {in_json:.2f} s)")
    print(f"  json.load / ours (in-process)  = {in_json / in_ours:5.2f}x  (target >= 3)")
    print(f"  ours peak RSS / JSON size      = {m_ours / size:5.2f}x  (target <= 1; {m_ours / 2**20:.0f} MiB)")
    if hta:
        w_hta, m_hta, out = timed(py(HTA.format(path=str(path))), env)
        fmt("HolisticTraceAnalysis 0.5 load", w_hta, m_hta, f"(in-process {float(out.split()[0]):.2f} s)")
        print(f"  HTA / ours (in-process)        = {float(out.split()[0]) / in_ours:5.2f}x  (target >= 10)")
    path.unlink()


CPU_INPROCESS = """
import gzip, json, logging, statistics, tempfile, shutil, time
logging.disable(logging.WARNING)
from workbench.profiles.table import open_table
path = {path!r}
open_table({warm!r}, cache=False)
fns = {{"ours": lambda: open_table(path, cache_dir=tempfile.mkdtemp()), "json": lambda: json.load(open(path))}}
if {hta!r}:
    from hta.trace_analysis import TraceAnalysis
    fns["hta"] = lambda: TraceAnalysis(trace_files={{0: path}}, trace_dir="/")
runs = {{k: [] for k in fns}}
for _ in range({repeat}):
    for k, fn in fns.items():
        t0 = time.perf_counter(); fn(); runs[k].append(time.perf_counter() - t0)
print(json.dumps({{k: [min(v), statistics.median(v)] for k, v in runs.items()}}))
"""


def bench_cpu(work: Path, hta: bool, repeat: int) -> None:
    path = work / "cpu_diff_x2.json"
    n, size = replicate(TRACES / "diff_control_a100.json.gz", 2, path)
    print(f"cpu: {n:,} events, {size / 1e6:.0f} MB JSON, CPU-heavy (cpu_op, cuda_runtime, async_cpu_to_gpu)")
    env = dict(os.environ, WORKBENCH_HOME=str(work / "home"))
    _, rss, out = timed(py(CPU_INPROCESS.format(path=str(path), warm=str(TRACES / "compare_base.json.gz"), hta=hta,
                                                repeat=repeat)), env)
    r = json.loads(out)
    for k, (lo, med) in r.items():
        print(f"  in-process {k:6s} min {lo:6.3f} s  median {med:6.3f} s")
    print(f"  ours / json.load (min | median) = {r['ours'][0] / r['json'][0]:5.2f}x | {r['ours'][1] / r['json'][1]:5.2f}x"
          "  (target <= 0.7)")
    if "hta" in r:
        print(f"  HTA / ours (min | median)       = {r['hta'][0] / r['ours'][0]:5.2f}x | {r['hta'][1] / r['ours'][1]:5.2f}x"
              "  (target >= 5)")
    cmd_runs, proc_runs = [], []
    for _ in range(repeat):  # alternated: a cold command (its cache removed) and a json.load process
        for cache in work.glob("cpu_diff_x2.json.*.parquet"):
            cache.unlink()
        cmd_runs.append(timed([PY, "-m", "workbench", "profiles", "summary", str(path), "--json"], env)[:2])
        proc_runs.append(timed([PY, "-c", f"import json; json.load(open({str(path)!r}))"], env)[:2])
    c, p = min(w for w, _ in cmd_runs), min(w for w, _ in proc_runs)
    cm, pm = statistics.median(w for w, _ in cmd_runs), statistics.median(w for w, _ in proc_runs)
    fmt("command `profiles summary` cold (min)", c, max(m for _, m in cmd_runs))
    fmt("process doing only json.load (min)", p, max(m for _, m in proc_runs))
    print(f"  command / json.load process (min | median) = {c / p:5.2f}x | {cm / pm:5.2f}x  (target <= 1.0)")
    path.unlink()


def bench_ranks(work: Path, repeat: int) -> None:
    folder = work / "ranks"
    folder.mkdir()
    sizes = []
    for rank, src in ((0, "sampled_rank0"), (1, "sampled_rank1"), (2, "sampled_rank0")):
        n, size = replicate(TRACES / f"{src}.json.gz", 186, folder / f"trace_rank{rank}.json", rank=rank)
        sizes.append((n, size))
    print(f"ranks: 3 traces of {', '.join(f'{n:,}' for n, _ in sizes)} events, {sum(s for _, s in sizes) / 1e6:.0f} MB JSON")
    env = dict(os.environ, WORKBENCH_HOME=str(work / "home"))
    paths = [str(p) for p in sorted(folder.glob("*.json"))]
    ours, base = [], []
    for _ in range(repeat):
        for cache in folder.glob("*.parquet"):
            cache.unlink()
        ours.append(timed([PY, "-m", "workbench", "profiles", "ranks", str(folder), "--json"], env))
        base.append(timed(py(JSON.format(paths=paths)), env))
    result = json.loads(ours[-1][2])
    fmt("`profiles ranks DIR --json` cold (min)", min(w for w, *_ in ours), max(m for _, m, _ in ours))
    fmt("json.load of the three, in sequence (min)", min(w for w, *_ in base), max(m for _, m, _ in base))
    print(f"  ranks / json.load (min)  = {min(w for w, *_ in ours) / min(w for w, *_ in base):5.2f}x  (target <= 0.5)")
    print(f"  straggler: {result['straggler']}; events per rank: {[r['events'] for r in result['ranks']]}")
    print(f"  max RSS of any process in the `ranks` tree: {max(m for _, m, _ in ours) / 2**20:.0f} MiB (target <= 1024)")


def bench_cli(work: Path, repeat: int) -> None:
    small = work / "small.json.gz"
    shutil.copy(TRACES / "alexnet_a100.json.gz", small)  # 25 KB gzip, 0.4 MB JSON
    env = dict(os.environ, WORKBENCH_HOME=str(work / "home"))
    cold, warm, bare, python = [], [], [], []
    for _ in range(repeat):
        for cache in work.glob("small.json.gz.*.parquet"):
            cache.unlink()
        cold.append(cpu_timed([PY, "-m", "workbench", "profiles", "summary", str(small), "--json"], env))
        warm.append(cpu_timed([PY, "-m", "workbench", "profiles", "summary", str(small), "--json"], env))
        bare.append(cpu_timed([PY, "-m", "workbench", "profiles", "--help"], env))
        python.append(cpu_timed([PY, "-c", "pass"], env))
    print("cli (wall min / CPU min, s; CPU time is what a busy shared machine does not inflate):")
    for label, runs in (("python -c pass", python), ("workbench profiles --help (no reading)", bare),
                        ("summary of a 25 KB gzip trace, cold", cold), ("the same, warm (Parquet cache)", warm)):
        print(f"  {label:45s} {min(w for w, _ in runs):5.2f} / {min(c for _, c in runs):5.2f}")
    print("  targets: <= 0.3 s before any reading; a small trace < 0.75 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="cli,cpu,ranks,big")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="wb-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared: figures are same-run)")
    try:
        for part in args.only.split(","):
            {"big": lambda: bench_big(work, not args.no_hta), "cpu": lambda: bench_cpu(work, not args.no_hta, args.repeat),
             "ranks": lambda: bench_ranks(work, args.repeat), "cli": lambda: bench_cli(work, args.repeat)}[part]()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
