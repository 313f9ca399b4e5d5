"""`workbench endpoints ...`: deploy an ONNX model on a slice, list, show, bench and stop endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from workbench.cli._common import console, get_workbench, print_json, table
from workbench.errors import InvalidRequest

app = typer.Typer(help="Models served from a slice (ONNX Runtime, KServe v2 HTTP protocol).", no_args_is_help=True)

_COLUMNS = ["id", "name", "owner", "state", "URL", "slice", "reason"]


def _rows(endpoints: list[Any]) -> list[list[Any]]:
    return [[e.id, e.name, e.owner, e.state, e.url, e.lease_id, e.reason if not e.live else None] for e in endpoints]


@app.command()
def export(
    factory: str = typer.Argument(..., help="PATH.py:FUNCTION or module:FUNCTION building the torch module, e.g. examples/torch_cnn_digits.py:build_model."),
    shape: str = typer.Option(..., "--shape", help="The example input's shape, batch first, e.g. 1,1,8,8."),
    weights: str | None = typer.Option(None, "--weights", help="A state dict: a file, or JOB_ID:ARTIFACT (e.g. job-…:cnn_weights.pt)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the .onnx (default: under the data directory)."),
    as_json: bool = typer.Option(False, "--json", help="The file, its inputs and outputs, and the parity per output."),
) -> None:
    """Export a torch module (a job's trained weights) to ONNX and check parity against PyTorch."""
    try:
        dims = [int(d) for d in shape.split(",") if d.strip()]
    except ValueError:
        raise InvalidRequest(f"--shape {shape!r} must be whole numbers, comma-separated, e.g. 1,1,8,8") from None
    result = get_workbench().endpoints.export_from(factory, dims, weights=weights, path=out)
    if as_json:
        print_json(result.as_json())
        return
    rows = [[p.name, f"{p.max_abs_err:.3g}", f"{p.max_rel_err:.3g}", "ok" if p.ok else "FAILED"] for p in result.parity]
    table(f"{result.path} (parity at rtol={result.rtol:g}, atol={result.atol:g})", ["output", "max abs err", "max rel err", ""], rows)
    if not result.ok:
        raise typer.Exit(3)


@app.command()
def deploy(
    model: str = typer.Argument(..., help="MODEL.onnx: inputs, outputs and their shapes come from the file."),
    slice_: str = typer.Option("cpu", "--slice", help="A lease id you hold, or a spec to request (cpu, cpu:2, 0.25, 1g.10gb)."),
    name: str | None = typer.Option(None, "--name", help="The model's name in the URL (default: the file's stem)."),
    max_batch_size: int = typer.Option(32, "--max-batch-size", help="Most rows the micro-batcher joins into one run."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", help="Longest a request waits for others to join its batch."),
    no_token: bool = typer.Option(False, "--no-token", help="Serve without a bearer token (anyone on the host may call it)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the server to be ready."),
    as_json: bool = typer.Option(False, "--json", help='{"id", "name", "url", "state", "token"} on stdout.'),
) -> None:
    """Serve an ONNX model from a slice; prints its URL and bearer token."""
    ep = get_workbench().endpoints.deploy(
        model, slice_, name=name, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
        token=not no_token, timeout_s=timeout,
    )
    if as_json:
        print_json(ep.deploy_json())
        return
    table(f"endpoint {ep.name}", _COLUMNS, _rows([ep]))
    console.print(f"infer: POST {ep.infer_url}", highlight=False)
    if ep.token:
        console.print(f"token: {ep.token}  (send 'Authorization: Bearer TOKEN')", highlight=False)


@app.command("list")
def list_(
    all_users: bool = typer.Option(False, "--all", help="Everyone's endpoints, not only yours."),
    stopped: bool = typer.Option(False, "--stopped", help="Include stopped and failed endpoints."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list on stdout."),
) -> None:
    """Your endpoints that are starting or ready."""
    endpoints = get_workbench().endpoints.list(all_users=all_users, include_stopped=stopped)
    if as_json:
        print_json([e.as_json() for e in endpoints])
        return
    table("endpoints", _COLUMNS, _rows(endpoints))


@app.command()
def show(endpoint_id: str = typer.Argument(..., help="Endpoint id or name."), as_json: bool = typer.Option(False, "--json")) -> None:
    """One endpoint: URL, slice, inputs and outputs, batching, last bench."""
    ep = get_workbench().endpoints.get(endpoint_id)
    if as_json:
        print_json(ep.as_json())
        return
    table(f"endpoint {ep.name}", _COLUMNS, _rows([ep]))
    for what, specs in (("input", ep.inputs), ("output", ep.outputs)):
        for t in specs:
            console.print(f"{what} {t['name']}: {t['datatype']} {t['shape']}", highlight=False)
    console.print(f"batching: max_batch_size={ep.config.get('max_batch_size')} max_wait_ms={ep.config.get('max_wait_ms')}", highlight=False)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise InvalidRequest(f"--concurrency {text!r} must be whole numbers of at least 1, comma-separated, e.g. 1,8,32")
    return levels


@app.command()
def bench(
    endpoint_id: str = typer.Argument(..., help="Endpoint id or name."),
    concurrency: str = typer.Option("1,8,32", "--concurrency", help="Concurrent clients, comma-separated."),
    seconds: float = typer.Option(10.0, "--seconds", help="Measured seconds per concurrency (after a warm-up)."),
    warmup: float = typer.Option(1.0, "--warmup", help="Warm-up seconds per concurrency, not counted."),
    as_json: bool = typer.Option(False, "--json", help='{"results": [...], "baseline": {"p50_ms", "rps"}} on stdout.'),
) -> None:
    """Closed-loop load (httpx, loopback): p50/p95/p99 and requests/s per concurrency, beside raw session.run."""
    result = get_workbench().endpoints.bench(endpoint_id, concurrency=_levels(concurrency), seconds=seconds, warmup_s=warmup)
    if as_json:
        print_json(result.as_json())
        return
    rows = [[r["concurrency"], r["requests"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
             f"{r['p99_ms']:.2f}", f"{result.tail_amplification(r['concurrency']) or 0:.2f}"] for r in result.results]
    table(f"bench {endpoint_id}", ["concurrency", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99/p50"], rows)
    console.print(f"raw session.run: p50 {result.baseline['p50_ms']:.3f} ms, {result.baseline['rps']:.0f} runs/s", highlight=False)
    if result.serving_overhead_ms is not None:
        console.print(f"serving overhead: {result.serving_overhead_ms:.2f} ms at p50", highlight=False)
    if result.batching_gain is not None:
        console.print(f"batching gain: {result.batching_gain:.2f}×", highlight=False)


@app.command()
def stop(endpoint_id: str = typer.Argument(..., help="Endpoint id or name."), as_json: bool = typer.Option(False, "--json")) -> None:
    """Stop the server (its URL no longer answers); releases the slice if the endpoint requested it."""
    ep = get_workbench().endpoints.stop(endpoint_id)
    if as_json:
        print_json(ep.as_json())
        return
    table(f"endpoint {ep.name}", _COLUMNS, _rows([ep]))


