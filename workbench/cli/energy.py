"""`workbench energy ...`: totals by user and project, the carbon signal, start-time plans, metering a command."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Optional

import typer

from workbench.cli._common import console, get_workbench, labelled, print_json, table
from workbench.units import format_energy_j, format_significant

app = typer.Typer(help="Energy and carbon: totals by user and project, the grid's carbon signal, carbon-aware start times.", no_args_is_help=True)


def _when(text: str | None, *, now: dt.datetime) -> dt.datetime | None:
    """An ISO date/time (UTC if no zone), or a duration back from now such as '7d', '12h'."""
    if text is None:
        return None
    from workbench.errors import InvalidRequest
    from workbench.units import parse_duration_s, parse_time_utc

    try:
        return parse_time_utc(text)
    except InvalidRequest:
        pass
    try:
        return now - dt.timedelta(seconds=parse_duration_s(text, "time"))
    except InvalidRequest:
        raise InvalidRequest(f"time {text!r} is neither an ISO date/time (2026-11-01T00:00) nor a duration back from now (7d, 12h)") from None


@app.command()
def summary(
    since: Annotated[Optional[str], typer.Option("--since", help="Start: ISO date/time or a duration back from now (7d).")] = "30d",
    until: Annotated[Optional[str], typer.Option("--until", help="End: ISO date/time or a duration back from now; default now.")] = None,
    freq: Annotated[Optional[str], typer.Option("--freq", help="Also split by time, e.g. 1D.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Energy (Wh; kWh in --json) and carbon (gCO2e) of finished jobs, by user and project, over a period."""
    now = dt.datetime.now(dt.timezone.utc)
    start, end = _when(since, now=now), _when(until, now=now)
    wb = get_workbench()
    ds = wb.energy.summary(start, end, freq=freq)
    frame = ds.to_dataframe().reset_index()
    frame = frame[frame["jobs"] > 0]
    if as_json:
        records = frame.assign(**{c: frame[c].astype(str) for c in ("time",) if c in frame}).to_dict(orient="records")
        print_json({"start": start, "end": end or now, "rows": records})
        return
    columns = [c for c in ("time", "user", "project") if c in frame] + ["jobs", "energy", "carbon", "estimated jobs"]
    rows = [
        [*(str(r[c]) for c in ("time", "user", "project") if c in frame), int(r["jobs"]),
         format_energy_j(r["energy_kwh"] * 3.6e6), f"{format_significant(r['carbon_g'])} g", int(r["estimated_jobs"])]
        for r in frame.to_dict(orient="records")
    ]
    period = f"{start:%Y-%m-%d %H:%M} .. {(end or now):%Y-%m-%d %H:%M} UTC" if start else "all time"
    table(f"Energy and carbon of finished jobs, {period}", columns, rows)
    if not rows:
        console.print("no finished jobs with an energy reading in this period")


@app.command()
def signal(
    where: Annotated[Optional[str], typer.Argument(help="Zone (CISO, ERCO, NYIS) or CSV file; default the configured signal.")] = None,
    day: Annotated[Optional[str], typer.Option("--day", help="Show the 24 hours of this date (YYYY-MM-DD).")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Repair a bad file (sort, drop repeats, bad values as missing) instead of failing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Inspect a carbon signal: its span, mean, interpolated hours and any problems; or one day hour by hour."""
    from workbench.energy.signal import load_signal

    if where is None:
        settings = get_workbench().settings
        where = str(settings.carbon_signal or settings.carbon_zone)
    sig = load_signal(where, repair=repair)
    info = sig.summary()
    hours: list[dict[str, object]] = []
    if day is not None:
        frame = sig.to_frame()
        picked = frame.loc[day] if day in frame.index.strftime("%Y-%m-%d") else frame.iloc[0:0]
        hours = [{"hour": str(t), "avg_CI": float(r["avg_CI"]), "interpolated": bool(r["interpolated"])} for t, r in picked.iterrows()]
        if not hours:
            from workbench.errors import InvalidRequest

            raise InvalidRequest(f"day {day} is not in the signal ({info['start'][:10]} .. {info['end'][:10]})")
    if as_json:
        print_json({**info, "hours": hours} if hours else info)
        return
    table(f"Carbon signal {info['zone']}", ["field", "value"], [
        ["source", info["source"]], ["from", info["start"]], ["to", info["end"]], ["hours", f"{info['hours']:,}"],
        ["interpolated hours", info["interpolated_hours"]],
        ["gCO2/kWh mean / min / max", f"{info['mean_ci']:.0f} / {info['min_ci']:.0f} / {info['max_ci']:.0f}"],
    ])
    for issue in info["issues"]:
        console.print(labelled("note", "yellow", str(issue)))
    if hours:
        table(f"{info['zone']} on {day} (UTC)", ["hour", "gCO2/kWh", "interpolated"],
              [[h["hour"][11:16], f"{h['avg_CI']:.0f}", "yes" if h["interpolated"] else ""] for h in hours])


@app.command()
def plan(
    duration: Annotated[str, typer.Option("--duration", help="Expected run time: 90m, 2h, or seconds.")],
    deadline: Annotated[str, typer.Option("--deadline", help="Finish by: a duration from now (8h) or an ISO date/time.")],
    now: Annotated[Optional[str], typer.Option("--now", help="Plan as of this ISO date/time (default: now).")] = None,
    forecast: Annotated[str, typer.Option("--forecast", help="blend (fitted on the past; the default), persistence (day-ahead) or perfect (recorded values).")] = "blend",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """When a deferrable job of this duration should start to emit least before its deadline."""
    from workbench.errors import InvalidRequest
    from workbench.units import parse_duration_s, parse_time_utc

    wb = get_workbench()
    at = parse_time_utc(now, "--now") if now else None
    try:
        limit: object = parse_time_utc(deadline)
    except InvalidRequest:
        limit = deadline
    result = wb.energy.plan(parse_duration_s(duration, "--duration"), limit, at, forecast=forecast)
    if as_json:
        print_json(result.as_json())
        return
    console.print(repr(result), highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def measure(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between power samples.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reading as JSON.")] = False,
) -> None:
    """Run a command (after --) and print its energy, power and carbon: `workbench energy measure -- python train.py`."""
    import subprocess

    from workbench.errors import InvalidRequest

    if not ctx.args:
        raise InvalidRequest("no command to measure; give it after --, e.g. workbench energy measure -- python train.py")
    wb = get_workbench()
    meter = wb.energy.meter(sample_interval_s=interval)
    meter.start()
    code = subprocess.call(ctx.args)
    reading = meter.stop()
    carbon = wb.energy.carbon_g(reading.energy_j, reading.started_at, reading.ended_at)
    if as_json:
        print_json({**reading.as_json(), "carbon_g": carbon, "exit_code": code})
    else:
        console.print(f"{reading!r}\n{reading.detail}\n{format_significant(carbon)} gCO2e ({wb.energy.signal.zone}); "
                      f"meter overhead {reading.overhead_fraction:.3%}", highlight=False)
    raise typer.Exit(code)


