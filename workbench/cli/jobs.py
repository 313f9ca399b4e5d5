"""`workbench jobs run|list|show|logs|cancel`: jobs from the shell.

`run --wait` drives the job from this process (its embedded Dask cluster, or
`WORKBENCH_DASK_SCHEDULER`) and returns when it ends: with `--json` it prints the job as one
JSON object, else it streams the job's log. Without `--wait` a detached driver process runs the
job to its end (`workbench._entry.detached`) and `run` returns at once with the job's id; follow
it with `workbench jobs logs ID -f`. Exit status of `run --wait`: 0 when the job succeeded,
3 when it ended otherwise (failed, cancelled, preempted), 1 for a workbench error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from workbench.cli._common import console, err_console, get_workbench, print_json, table

app = typer.Typer(help="Run JAX and PyTorch jobs on Dask, bound to a slice; logs, metrics, cancel.", no_args_is_help=True)

JOB_FAILED_EXIT = 3


def _params(items: list[str] | None) -> dict[str, Any]:
    import orjson

    from workbench.errors import InvalidRequest

    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--param {item!r} is not KEY=VALUE")
        try:
            params[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            params[key] = raw
    return params


def _slice_arg(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value) if value.replace(".", "", 1).isdigit() else value
    except ValueError:
        return value


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A .py script or a .ipynb notebook (papermill). Arguments after -- go to the script.")],
    framework: Annotated[str | None, typer.Option("--framework", help="jax, torch or none.")] = None,
    slice_: Annotated[str | None, typer.Option("--slice", help="A slice spec (cpu, cpu:2, 1g.10gb, 0.25, gpu) or the id of a lease you hold.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as one JSON object.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="A name for the job (default: the file's stem).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE: a papermill parameter, or --KEY VALUE for a script. Repeatable.")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Attempts after a failure.")] = 0,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Fail an attempt running longer than this (30, 90s, 5m, 2h).")] = None,
    priority: Annotated[int, typer.Option("--priority")] = 0,
    profile: Annotated[bool, typer.Option("--profile", help="Capture a torch/jax profiler trace and register it.")] = False,
) -> None:
    """Run a script or notebook as a job on a slice (default: a CPU slice)."""
    from workbench.jobs.targets import check_framework, check_target
    from workbench.units import parse_duration_s

    framework = check_framework(framework)
    check_target(path)  # a missing script or a wrong suffix is reported before anything starts
    timeout_s = None if timeout is None else parse_duration_s(timeout, "--timeout")
    params = _params(param)
    args = list(ctx.args)
    if not wait:
        _run_detached(path, framework, slice_, as_json, name, params, args, retries, timeout_s, priority, profile)
        return
    wb = get_workbench()
    try:
        job = wb.jobs.submit(path, slice=_slice_arg(slice_), framework=framework, name=name, params=params or None,
                             args=args or None, retries=retries, timeout=timeout_s, priority=priority, profile=profile)
        if as_json:
            job.wait()
            print_json(job.as_json())
        else:
            err_console.print(f"job {job.id} ({job.name}) submitted; log {job.log_path}", highlight=False)
            _show_wait(job)
            job.logs(follow=True)
            job.refresh()
            err_console.print(f"job {job.id} {job.state}" + (f": {job.reason}" if job.reason else ""), highlight=False)
    finally:
        wb.close()
    if job.state != "succeeded":
        sys.exit(JOB_FAILED_EXIT)  # not typer.Exit: the root app runs with standalone_mode=False


def _show_wait(job: Any, poll_s: float = 0.5) -> None:
    """Until the job runs (or ends): a live status line with its state, why it waits (its place in
    the slices queue), and for how long; where stderr is no terminal, a line each time that changes.

    A job that waits for a slice on a busy machine would otherwise print nothing for minutes.
    """
    import time

    job.refresh()
    if job.state not in ("queued", "allocating"):
        return
    started = time.monotonic()
    said = None
    with err_console.status("", spinner="dots") as status:
        while job.state in ("queued", "allocating"):
            waited = time.monotonic() - started
            waiting = _waiting_for(job)
            status.update(Text(f"job {job.id} {job.state} for {waited:.0f} s: {waiting}"))
            if not err_console.is_terminal and waiting != said:
                err_console.print(f"job {job.id} {job.state}: {waiting}", markup=False, highlight=False)
                said = waiting
            time.sleep(poll_s)
            job.refresh()
    err_console.print(f"job {job.id} {job.state} after {time.monotonic() - started:.1f} s in the queue")


def _waiting_for(job: Any) -> str:
    """What the job waits for, with its place in the slices queue when it waits for a slice."""
    position, reason = job.slice_queue()
    if position is None:
        return job.reason or "waiting"
    return f"#{position} in the queue for slice {job.slice_spec} ({job.lease_id}): {reason or 'waiting for room'}"


def _run_detached(path: Path, framework: str | None, slice_: str | None, as_json: bool, name: str | None,
                  params: dict[str, Any], args: list[str], retries: int, timeout_s: float | None, priority: int,
                  profile: bool) -> None:
    import os
    import subprocess

    import orjson

    from workbench.errors import BackendUnavailable, WorkbenchError

    request = {"path": str(path.resolve()), "framework": framework, "slice": _slice_arg(slice_), "name": name,
               "params": params, "args": args, "retries": retries, "timeout": timeout_s, "priority": priority,
               "profile": profile, "cwd": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench._entry.detached", orjson.dumps(request).decode()],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line:
        code = proc.wait()
        raise BackendUnavailable(f"the detached job driver exited with status {code} before submitting the job")
    data = orjson.loads(line)
    if "submit_error" in data:
        proc.wait()
        raise WorkbenchError(data["submit_error"])
    if as_json:
        print_json(data)
    else:
        console.print(f"job {data['id']} ({data['name']}) submitted; a detached driver (pid {proc.pid}) runs it.\n"
                      f"follow: workbench jobs logs {data['id']} -f    cancel: workbench jobs cancel {data['id']}",
                      highlight=False)


@app.command("list")
def list_(
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's jobs, not only yours.")] = False,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    state: Annotated[list[str] | None, typer.Option("--state", help="Only jobs in this state (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List jobs, newest first."""
    wb = get_workbench()
    try:
        jobs = wb.jobs.list(owner=owner, all_users=all_users, state=state or None, limit=limit)
    finally:
        wb.close()
    if as_json:
        print_json([j.as_json() for j in jobs])
        return
    rows = [[j.id, j.name, j.owner, j.state, j.framework, j.lease_id or j.slice_spec,
             j.created_at.strftime("%Y-%m-%d %H:%M:%S") if j.created_at else None,
             _seconds(j.queued_s), _seconds(j.duration_s), _energy(j), j.reason] for j in jobs]
    table("Jobs", ["id", "name", "owner", "state", "framework", "slice", "created (UTC)", "queued", "ran", "energy", "reason"],
          rows, limit=None)


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f} s"


def _energy(job: Any) -> str | None:
    from workbench.units import format_energy_j

    return None if job.energy_j is None else format_energy_j(job.energy_j, estimated=bool(job.energy_estimated))


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A job's details and its state transitions."""
    wb = get_workbench()
    try:
        job = wb.jobs.get(job_id)
        events = job.events()
    finally:
        wb.close()
    if as_json:
        print_json({**job.as_json(), "events": events})
        return
    data = job.as_json()
    for key in ("params", "error"):
        data.pop(key, None)
    if "energy_j" in data:  # one unit for energy in every face (the JSON keeps joules)
        data = {("energy" if k == "energy_j" else k): (_energy(job) if k == "energy_j" else v)
                for k, v in data.items() if k != "energy_estimated"}
    table(f"Job {job.id}", ["field", "value"], [[k, v] for k, v in data.items()], limit=None)
    table("Transitions", ["at", "state", "reason"], [[e["at"], e["state"], e["reason"]] for e in events], limit=None)
    if job.error:
        console.print(job.error, highlight=False, markup=False)


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print the job's log (stdout and stderr) so far; -f follows it."""
    wb = get_workbench()
    try:
        if follow:
            for text in wb.jobs.follow_logs(job_id):
                sys.stdout.write(text)
                sys.stdout.flush()
        else:
            sys.stdout.write(wb.jobs.logs(job_id))
            sys.stdout.flush()
    finally:
        wb.close()


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Stop a job (cooperatively, then by ending its worker) and wait until it has stopped."""
    wb = get_workbench()
    try:
        job = wb.jobs.cancel(job_id)
    finally:
        wb.close()
    if as_json:
        print_json(job.as_json())
    else:
        console.print(f"job {job.id} {job.state}" + (f": {job.reason}" if job.reason else ""), highlight=False)


@app.command()
def metrics(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Every row as JSON records.")] = False,
    tail: Annotated[int, typer.Option("--tail", help="Rows to show in the table.")] = 10,
) -> None:
    """The metrics the job logged (the last rows)."""
    wb = get_workbench()
    try:
        ds = wb.jobs.get(job_id).metrics()
    finally:
        wb.close()
    frame = ds.to_dataframe().reset_index() if ds.sizes.get("step") else None
    if as_json:
        print_json([] if frame is None else frame.to_dict(orient="records"))
        return
    if frame is None:
        console.print(f"job {job_id} has logged no metrics")
        return
    shown = frame.tail(tail)
    table(f"Metrics of {job_id} ({len(frame)} steps)", list(shown.columns),
          [[f"{v:.4g}" if isinstance(v, float) else v for v in row] for row in shown.itertuples(index=False)], limit=None)
