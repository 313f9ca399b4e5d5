"""`workbench slices ...`: list, request, release, renew leases; replay a trace; plan MIG layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from workbench.cli._common import console, get_workbench, print_json, table
from workbench.errors import WorkbenchError

app = typer.Typer(help="GPU slices: MIG instances, fractions, whole GPUs, CPU cores; placement policies.", no_args_is_help=True)


def _lease_rows(leases: list[Any]) -> list[list[Any]]:
    rows = []
    for lease in leases:
        held = lease.spec if lease.state == "queued" else lease.describe()
        note = lease.reason if lease.state != "active" else (f"{lease.expires_at:%H:%M:%S}" if lease.expires_at else None)
        rows.append([lease.id, lease.owner, lease.project, lease.state, held, lease.priority, note])
    return rows


_LEASE_COLUMNS = ["id", "owner", "project", "state", "slice", "priority", "expires (UTC) / reason"]


def _show(lease: Any, as_json: bool, *, env: bool = True) -> None:
    if as_json:
        print_json(lease.as_json())
        return
    table(f"lease {lease.id}", _LEASE_COLUMNS, _lease_rows([lease]))
    if env and lease.env and lease.live:
        console.print("environment: " + " ".join(f"{k}={v}" for k, v in sorted(lease.env.items())), highlight=False)


@app.command("list")
def list_(
    all_users: bool = typer.Option(False, "--all", help="Everyone's leases, not only yours."),
    ended: bool = typer.Option(False, "--ended", help="Include released, expired, preempted and reclaimed leases."),
    owner: str | None = typer.Option(None, help="Someone else's leases."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list on stdout."),
) -> None:
    """Your leases (live and queued)."""
    wb = get_workbench()
    leases = wb.slices.list(owner=owner, all_users=all_users, include_ended=ended)
    if as_json:
        print_json([lease.as_json() for lease in leases])
        return
    table("slices", _LEASE_COLUMNS, _lease_rows(leases))


@app.command()
def request(
    spec: str = typer.Argument("cpu", help='cpu, cpu:N, a MIG profile (1g.10gb), a fraction (0.25), memory (10GiB), gpu, gpu:N.'),
    project: str | None = typer.Option(None, help="Project charged (default: the project setting)."),
    priority: int = typer.Option(0, help="Higher may preempt lower after the minimum runtime."),
    ttl: float | None = typer.Option(None, "--ttl", help="Seconds until the lease expires unless renewed."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Queue until granted, or fail at once with the reason."),
    timeout: float | None = typer.Option(None, help="Give up waiting after this many seconds."),
    model: list[str] | None = typer.Option(None, "--model", help="Allowed GPU model (repeat for any-of)."),
    min_memory: str | None = typer.Option(None, help="Minimum GPU memory, e.g. 40GiB."),
    node: str | None = typer.Option(None, help="Only this node."),
    policy: str | None = typer.Option(None, help="Placement policy: first-fit, best-fit, random, fgd, fgd-cpu, fgd-mix (the default)."),
    cpus: float | None = typer.Option(None, "--cpus", help="Host CPU cores beside a GPU slice."),
    memory: str | None = typer.Option(None, "--memory", help="Host memory, e.g. 16GiB: a CPU slice's size, or beside a GPU slice."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Lease a slice; prints the lease and the environment its processes need."""
    wb = get_workbench()
    lease = wb.slices.request(
        spec, project=project, priority=priority, ttl_s=ttl, wait=wait, timeout_s=timeout,
        models=model or None, min_memory_bytes=min_memory, node=node, policy=policy,
        cpu_cores=cpus, memory_bytes=memory,
    )
    _show(lease, as_json)


@app.command()
def release(lease_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Give a slice back (idempotent)."""
    _show(get_workbench().slices.release(lease_id), as_json, env=False)  # a released lease's environment is no use


@app.command()
def renew(lease_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Heartbeat: the lease expires one TTL from now."""
    _show(get_workbench().slices.renew(lease_id), as_json)


@app.command()
def replay(
    nodes: Path = typer.Option(..., "--nodes", help="Alibaba v2023 node list CSV (sn, cpu_milli, memory_mib, gpu, model)."),
    pods: Path = typer.Option(..., "--pods", help="Task list CSV (name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec, creation_time])."),
    policy: str | None = typer.Option(None, help="first-fit, best-fit, random, fgd, fgd-cpu, fgd-mix (default: fgd-mix, the most robust measured across the FGD task-list family)."),
    until: float = typer.Option(1.0, help="Stop when arrived GPU demand reaches this × the cluster's GPUs."),
    seed: int = typer.Option(0, help="Seed for re-sampling tasks and for the random policy."),
    assignments: Path | None = typer.Option(None, help="Write one CSV row per placed task here."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Replay a cluster trace through a placement policy (the FGD paper's method) and report."""
    from workbench.slices.replay import replay as run
    from workbench.slices.replay import write_assignments

    result = run(nodes, pods, policy, until=until, seed=seed, keep_assignments=assignments is not None)
    if assignments is not None:
        write_assignments(assignments, result)
    if as_json:
        print_json(result.as_json())
        return
    data = result.as_json()
    table(f"replay: {result.policy}", ["measure", "value"], [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in data.items()])


@app.command("plan-mig")
def plan_mig(
    profiles: list[str] = typer.Argument(..., help="Profiles to place, e.g. 3g.40gb 1g.10gb (PROFILE@START counts as existing)."),
    gpu: str = typer.Option(..., "--gpu", help="GPU model: 'NVIDIA H100 80GB HBM3', H100-80GB, A100-40GB, A100-80GB, H200-141GB."),
    existing: list[str] | None = typer.Option(None, "--existing", help="An instance already there, PROFILE@START (repeat, or comma-separate)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Plan where new MIG instances go on one GPU, beside the existing ones."""
    there = [item for raw in existing or [] for item in raw.split(",") if item]
    there += [p for p in profiles if "@" in p]
    wanted = [p for p in profiles if "@" not in p]
    try:
        result = get_workbench().slices.plan_mig(gpu, wanted, there)
    except WorkbenchError as exc:
        if not as_json:
            raise
        # Machines get JSON on stdout either way; a request that can never be met exits 1.
        print_json({"feasible": False, "reason": str(exc)})
        raise typer.Exit(1) from None
    if as_json:
        print_json(result.as_json())
        return
    if not result.feasible:
        console.print(f"not feasible: {result.reason}", highlight=False)
        return
    table(f"MIG plan on {result.model}", ["profile", "start", ""], [[p.profile, p.start, "new" if p in result.placements else "existing"] for p in result.layout])


@app.command()
def sweep(as_json: bool = typer.Option(False, "--json")) -> None:
    """Expire leases past their TTL, mark idle ones (with evidence) and grant what now fits.

    Requests that wait do this themselves; run it from cron or a systemd timer so idle leases are
    noticed when nobody is waiting yet.
    """
    counts = get_workbench().slices.sweep()
    if as_json:
        print_json(counts)
        return
    table("sweep", ["expired", "marked idle", "granted"], [[counts["expired"], counts["idle"], counts["granted"]]])
