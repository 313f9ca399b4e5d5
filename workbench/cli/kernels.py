"""`workbench kernels list|check|bench|results`: Triton and Pallas kernels, checked and timed.

`check` exits 1 when any case fails (a wrong result, a kernel that raised, a shape or dtype the
kernel does not support); skipped cases (bf16 in Triton's interpreter) do not fail it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli._common import console, get_workbench, print_json, table

app = typer.Typer(help="Triton and Pallas kernels: list, check against references, benchmark.", no_args_is_help=True)

_Names = Annotated[list[str] | None, typer.Argument(help="Kernel names (default with --all: every kernel).")]
_All = Annotated[bool, typer.Option("--all", help="Every kernel.")]
_Backend = Annotated[str | None, typer.Option("--backend", help="triton or pallas (default: both).")]
_Shapes = Annotated[list[str] | None, typer.Option("--shape", help="A shape such as 65x130; repeat for several.")]
_Dtypes = Annotated[list[str] | None, typer.Option("--dtype", help="float32, float16 or bfloat16; repeat for several.")]
_Json = Annotated[bool, typer.Option("--json", help="Print a JSON list of results.")]
_CheckPasses = Annotated[list[str] | None, typer.Option(
    "--pass", help="fwd (the output) or bwd (the gradients); repeat for both (default: both where a kernel has a backward).")]
_BenchPass = Annotated[str, typer.Option("--pass", help="fwd (the forward) or bwd (the backward alone).")]


def _names(names: list[str] | None, all_: bool) -> list[str] | None:
    from workbench.errors import InvalidRequest

    if names and all_:
        raise InvalidRequest("give kernel names or --all, not both")
    if not names and not all_:
        raise InvalidRequest("name the kernels to run (see `workbench kernels list`) or pass --all")
    return names or None


def _fmt(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


@app.command("list")
def list_(as_json: _Json = False) -> None:
    """The kernels: built-in (top-level kernels/ folder) per backend."""
    specs = get_workbench().kernels.list()
    if as_json:
        print_json([s.as_json() for s in specs])
        return
    table("Kernels", ["kernel", "backend", "dtypes", "baseline", "what"],
          [[s.name, s.backend, ", ".join(s.dtypes), s.framework_name, s.summary] for s in specs])


@app.command()
def check(names: _Names = None, all_: _All = False, backend: _Backend = None, shape: _Shapes = None,
          dtype: _Dtypes = None, pass_: _CheckPasses = None, as_json: _Json = False) -> None:
    """Check kernels against their references, and their gradients against autograd of the references
    (Triton in its interpreter and Pallas with interpret=True without a GPU)."""
    wb = get_workbench()
    results = wb.kernels.check(_names(names, all_), backend=backend, shapes=shape, dtypes=dtype, passes=pass_)
    if as_json:
        print_json([r.as_json() for r in results])
    else:
        rows = [[r.kernel, r.pass_, r.backend, r.dtype, r.shape + "".join(f" {k}={v}" for k, v in r.params.items()),
                 {True: "ok", False: "FAILED", None: "skipped"}[r.ok], _fmt(r.max_abs_err, ".2e"),
                 _fmt(r.max_rel_err, ".2e"), r.error or r.skipped_reason] for r in results]
        table("Kernel checks", ["kernel", "pass", "backend", "dtype", "shape", "status", "max abs err", "max rel err",
                                "detail"], rows, limit=None)
        console.print(f"{sum(r.ok is True for r in results)} ok, {len(results.failed)} failed, "
                      f"{sum(r.ok is None for r in results)} skipped")
    if results.failed:
        raise SystemExit(1)  # not typer.Exit: the root app runs with standalone_mode=False, which returns its code


@app.command()
def bench(names: _Names = None, all_: _All = False, backend: _Backend = None, shape: _Shapes = None,
          dtype: _Dtypes = None, baseline: Annotated[bool, typer.Option(help="Also time the framework's op.")] = True,
          pass_: _BenchPass = "fwd", as_json: _Json = False) -> None:
    """Time kernels with the framework's own operation in the same run (timings are null in interpreter mode);
    --pass bwd times the backward alone against the framework's autograd backward."""
    wb = get_workbench()
    results = wb.kernels.bench(_names(names, all_), backend=backend, shapes=shape, dtypes=dtype, pass_=pass_,
                               baseline=baseline)
    if as_json:
        print_json([r.as_json() for r in results])
    else:
        rows = [[r.kernel, r.pass_, r.backend, r.dtype, r.shape + "".join(f" {k}={v}" for k, v in r.params.items()),
                 _fmt(r.median_ms, ".3f"), _fmt(r.gbps, ".0f"), _fmt(r.tflops, ".1f"),
                 _fmt(r.fraction_of_roofline, ".0%"), _fmt(r.speedup_vs_baseline, ".2f"), r.baseline,
                 r.error or r.skipped_reason] for r in results]
        table("Kernel benchmarks", ["kernel", "pass", "backend", "dtype", "shape", "ms", "GB/s", "TFLOP/s", "of roofline",
                                    "x baseline", "baseline", "note"], rows, limit=None)
    if results.failed:
        raise SystemExit(1)  # not typer.Exit: the root app runs with standalone_mode=False, which returns its code


@app.command()
def results(kernel: Annotated[str | None, typer.Option(help="Only this kernel.")] = None,
            what: Annotated[str | None, typer.Option(help="check or bench.")] = None,
            limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
            as_json: _Json = False) -> None:
    """Stored check and benchmark results, newest first."""
    rows = get_workbench().kernels.results(kernel=kernel, what=what, limit=limit)
    if as_json:
        print_json(rows)
        return
    table("Kernel results", ["when", "kernel", "backend", "what", "dtype", "shape", "device", "ok", "max abs err", "ms"],
          [[r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), r["kernel"], r["backend"], r["what"], r["dtype"], r["shape"],
            r["device_model"], r["ok"], _fmt(r["max_abs_err"], ".2e"), _fmt(r["median_ms"], ".3f")] for r in rows])
