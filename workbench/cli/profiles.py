"""`workbench profiles ...`: summarize, break down and compare traces; list and show stored ones.

`summary` and `breakdown` on a trace file need no database and import neither torch nor jax;
a second run on the same file reads the Parquet cache beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from workbench.cli._common import console, get_workbench, labelled, print_json, table

app = typer.Typer(help="Profiles: traces of runs, their breakdowns, and run-vs-run comparison.", no_args_is_help=True)


def _fallback_dir() -> Path:
    from workbench.config import load_settings

    return load_settings().home / "cache" / "profiles"


def _summary(ref: str) -> dict:
    if Path(ref).exists():
        from workbench.profiles.table import summarize

        return summarize(ref, fallback_dir=_fallback_dir())
    return get_workbench().profiles.summary(ref)


def _resolve(ref: str):
    if Path(ref).exists():
        from workbench.profiles.profile import Profile

        return Profile.open(ref, fallback_dir=_fallback_dir())
    return get_workbench().profiles.get(ref)


def _us(v: float) -> str:
    return f"{v / 1000:,.2f} ms" if v >= 1000 else f"{v:,.1f} µs"


@app.command()
def summary(
    path: Annotated[str, typer.Argument(help="A trace file (.json / .json.gz) or a stored profile id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary object as JSON.")] = False,
) -> None:
    """Events, kernels, top kernels, CPU ops, GPU busy time, span and idle share."""
    s = _summary(path)
    if as_json:
        print_json(s)
        return
    console.print(Text.assemble((str(path), "bold"), f": {s['events']:,} events"))
    console.print(f"kernels: {s['kernels']['count']:,} ({_us(s['kernels']['total_us'])}); "
                  f"CPU ops: {s['cpu_ops']['count']:,} ({_us(s['cpu_ops']['total_us'])})")
    console.print(f"GPU busy {_us(s['gpu_busy_us'])} of {_us(s['gpu_span_us'])}: idle share {100 * s['gpu_idle_share']:.1f} %")
    table("Top kernels", ["kernel", "count", "total"],
          [[k["name"][:100], f"{k['count']:,}", _us(k["total_us"])] for k in s["top_kernels"]])
    for w in s.get("warnings", []):
        console.print(labelled("warning", "yellow", str(w)))


@app.command()
def breakdown(
    path: Annotated[str, typer.Argument(help="A trace file or a stored profile id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the breakdown object as JSON.")] = False,
) -> None:
    """HolisticTraceAnalysis's temporal breakdown and GPU kernel-type breakdown."""
    b = _resolve(path).breakdown()
    if as_json:
        print_json(b)
        return
    t = b["temporal"]
    table("Temporal breakdown (HTA definitions)", ["", "µs", "%"], [
        ["idle", f"{t['idle_us']:,}", t["idle_pct"]], ["compute", f"{t['compute_us']:,}", t["compute_pct"]],
        ["non-compute", f"{t['non_compute_us']:,}", t["non_compute_pct"]]])
    rows = [[k, f"{v:,}"] for k, v in {**b["kernel_types_us"], **b["kernel_types_overlap_us"]}.items()]
    table("GPU kernel types", ["type", "µs"], rows)
    if b.get("note"):
        console.print(b["note"])


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Run a (the baseline): trace file or profile id.")],
    b: Annotated[str, typer.Argument(help="Run b: trace file or profile id.")],
    by: Annotated[str, typer.Option("--by", help="Compare by 'name' or kernel 'category'.")] = "name",
    top: Annotated[int, typer.Option("--top", help="Rows to show (the table is sorted by |Δ|).")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print all rows as a JSON list.")] = False,
) -> None:
    """Which operators and kernels got slower or faster from a to b, and which appeared or vanished."""
    df = get_workbench().profiles.compare(_resolve(a), _resolve(b), by=by)
    if as_json:
        print_json(df.replace([float("inf")], None).to_dict("records"))
        return
    rows = [[r.kind, r.name[:80], r.status, r.count_a, r.count_b, _us(r.total_us_a), _us(r.total_us_b),
             f"{r.delta_us:+,.0f}", "new" if r.ratio == float("inf") else f"{r.ratio:.2f}×"]
            for r in df.head(top).itertuples()]
    table(f"{a} → {b}", ["kind", "name", "status", "n a", "n b", "a", "b", "Δ µs", "b/a"], rows, limit=None)


@app.command()
def idle(
    path: Annotated[str, typer.Argument(help="A trace file or a stored profile id.")],
    min_gap_us: Annotated[float, typer.Option("--min-gap-us", help="Report gaps at least this long.")] = 100.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the gaps as a JSON list.")] = False,
) -> None:
    """The GPU's long idle gaps with their host-side cause."""
    gaps = _resolve(path).idle(min_gap_us)
    gaps = gaps.astype(object).where(gaps.notna(), None)
    if as_json:
        print_json(gaps.to_dict("records"))
        return
    table(f"GPU gaps ≥ {min_gap_us:g} µs", ["device", "gap", "cause", "host op", "sync call", "next kernel"],
          [[r.device, _us(r.gap_us), r.cause, r.host_op, r.sync_call, str(r.next_kernel)[:60]] for r in gaps.itertuples()])


@app.command()
def ranks(
    folder: Annotated[Path, typer.Argument(help="A folder of traces, one per rank (*.json, *.json.gz).")],
    parallel: Annotated[int | None, typer.Option("--parallel", help="CPU slices to read with (default: one per trace, up to the cores).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {ranks: [...], straggler} as JSON.")] = False,
) -> None:
    """Read one trace per rank in parallel on Dask; per-rank GPU time, and the straggler rank."""
    r = get_workbench().profiles.load_ranks(folder, parallel=parallel)
    if as_json:
        print_json(r.as_json())
        return
    table(f"{len(r.table)} ranks", ["rank", "events", "GPU busy", "GPU idle", "comm", "late at collectives", "path"],
          [[int(x.rank), f"{int(x.events):,}", _us(x.gpu_busy_us), f"{100 * x.gpu_idle_share:.1f} %", _us(x.comm_us),
            int(x.late_arrivals), x.path] for x in r.table.itertuples()], limit=None)
    if r.straggler is None:
        console.print("no communication kernels: no straggler to name")
    else:
        console.print(f"straggler: rank {r.straggler['rank']}; the others waited {_us(r.straggler['wait_us'])} for it")


@app.command()
def load(
    path: Annotated[Path, typer.Argument(help="The trace file to register.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    job: Annotated[str | None, typer.Option("--job", help="The job that produced it.")] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Read a trace and register it in the store."""
    p = get_workbench().profiles.load(path, name=name, job_id=job, device=device)
    if as_json:
        print_json(p.as_json())
        return
    console.print(f"registered {p.id}: {p.name} ({p.summary()['events']:,} events)")


@app.command("list")
def list_(
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    job: Annotated[str | None, typer.Option("--job")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Stored profiles, newest first."""
    profiles = get_workbench().profiles.list(owner=owner, job_id=job)
    if as_json:
        print_json([{k: v for k, v in p.as_json().items() if k != "summary"} for p in profiles])
        return
    table("Profiles", ["id", "name", "owner", "job", "device", "framework", "events", "GPU idle", "created"],
          [[p.id, p.name, p.owner, p.job_id, p.device, p.framework, f"{p.summary().get('events', 0):,}",
            f"{100 * p.summary().get('gpu_idle_share', 0):.1f} %", p.created_at.strftime("%Y-%m-%d %H:%M") if p.created_at else None]
           for p in profiles])


@app.command()
def show(
    profile_id: Annotated[str, typer.Argument(help="A stored profile id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One stored profile: where it is, who made it, its summary."""
    p = get_workbench().profiles.get(profile_id)
    if as_json:
        print_json(p.as_json())
        return
    s = p.summary()
    table(p.id or "", ["", ""], [["name", p.name], ["path", str(p.path)], ["owner", p.owner], ["job", p.job_id],
                                 ["device", p.device], ["framework", p.framework], ["events", f"{s['events']:,}"],
                                 ["kernels", f"{s['kernels']['count']:,}"], ["GPU idle share", f"{100 * s['gpu_idle_share']:.1f} %"]],
          limit=None)


@app.command()
def export(
    path: Annotated[str, typer.Argument(help="A trace file or a stored profile id.")],
    out: Annotated[Path, typer.Argument(help="Where to write the slice (.json or .json.gz).")],
    start_us: Annotated[float | None, typer.Option("--start-us", help="Window start (the trace's timestamps).")] = None,
    end_us: Annotated[float | None, typer.Option("--end-us", help="Window end.")] = None,
) -> None:
    """Write a time slice of a trace as Chrome trace JSON (open it in Perfetto)."""
    from workbench.profiles.views import export_slice

    src = Path(path) if Path(path).exists() else get_workbench().profiles.get(path).path
    written = export_slice(src, out, start_us=start_us, end_us=end_us)
    console.print(f"wrote {written}")
