"""Kernel benchmarks: every built-in kernel checked, timed, and compared with the framework's op.

    python benchmarks/kernels.py                      # here (no GPU): checks in the interpreters, no timings
    python benchmarks/kernels.py --gpu --stage bench-triton --out DIR   # on a GPU (see kernels_gpu.sh)
    python benchmarks/kernels.py --stage summary --out DIR              # table + targets from DIR/*.json

Stages: `bench-triton` and `bench-pallas` time the kernels at the issue's sizes (softmax, layer
norm, RMS norm 8192x8192; matmul 4096^3; attention B4 H32 S4096 D128) with the framework's own
operation timed on the same inputs in the same process (`speedup_vs_baseline` = baseline time /
kernel time), plus a device-to-device copy as the measured memory bandwidth. `check-triton` and
`check-pallas` check every kernel on the GPU shapes, bf16 included. Each stage writes
DIR/<stage>.json; `summary` prints the table and the issue's targets.

It needs only torch/triton and/or jax besides this repository (the device image has no pydantic,
so the catalog module is loaded by path).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = [
    # kernel, backend, dtypes, params, what, threshold
    ("softmax", "triton", ("float16", "bfloat16"), {}, "fraction_of_measured_bandwidth", 0.85),
    ("softmax", "triton", ("float16", "bfloat16"), {}, "speedup_vs_baseline", 1.0),
    ("layer_norm", "triton", ("float16", "bfloat16"), {}, "fraction_of_measured_bandwidth", 0.85),
    ("layer_norm", "triton", ("float16", "bfloat16"), {}, "speedup_vs_baseline", 1.0),
    ("rms_norm", "triton", ("float16", "bfloat16"), {}, "fraction_of_measured_bandwidth", 0.85),
    ("rms_norm", "triton", ("float16", "bfloat16"), {}, "speedup_vs_baseline", 1.0),
    ("matmul", "triton", ("float16", "bfloat16"), {}, "speedup_vs_baseline", 0.90),
    ("attention", "triton", ("float16",), {"causal": True}, "speedup_vs_baseline", 1.0),
]


def _catalog():
    """The device catalog, imported normally or (bare GPU image) loaded by path."""
    try:
        from workbench.inventory import catalog

        return catalog
    except ImportError:
        path = ROOT / "workbench" / "inventory" / "catalog.py"
        spec = importlib.util.spec_from_file_location("workbench_catalog_standalone", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


def _write(out: Path, stage: str, payload: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stage.replace('-', '_')}.json").write_text(json.dumps(payload, indent=1, default=str))


def stage_bench(backend: str, out: Path, kernels: list[str]) -> list[dict]:
    from workbench.kernels import harness
    from workbench.kernels.registry import builtin_spec

    side = harness.side_for(backend)
    if not side.gpu:
        print(f"{backend}: no GPU here; timings are not taken in the interpreter", flush=True)
    measured = harness._TorchSide().measured_bandwidth_gbps() if _torch_gpu() else None
    if measured:
        print(f"measured device-to-device copy bandwidth: {measured:.0f} GB/s (bytes read + written)", flush=True)
    device_spec = _catalog().lookup(side.device_name()) if side.gpu else None
    rows: list[dict] = []
    for name in kernels:
        spec = builtin_spec(name, backend)
        cases = harness.cases_for(spec, "gpu" if side.gpu else "cpu", what="bench")
        started = time.perf_counter()
        try:
            results = harness.bench_cases(spec, cases, measured_gbps=measured, device_spec=device_spec)
        except Exception as exc:  # noqa: BLE001 - keep going: one broken kernel must not cost the others' figures
            print(f"{name} ({backend}): bench failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        for r in results:
            rows.append(r.as_json())
            print(f"  {r.label}: {harness._detail(r)}", flush=True)
        print(f"{name} ({backend}) benchmarked in {time.perf_counter() - started:.1f} s", flush=True)
        _write(out, f"bench-{backend}", rows)
    _write(out, f"bench-{backend}", rows)
    return rows


def stage_check(backend: str, out: Path, kernels: list[str], dtypes: list[str] | None = None) -> list[dict]:
    from workbench.kernels import harness
    from workbench.kernels.registry import builtin_spec

    side = harness.side_for(backend)
    rows: list[dict] = []
    for name in kernels:
        spec = builtin_spec(name, backend)
        cases = harness.cases_for(spec, "gpu" if side.gpu else "cpu", what="check", dtypes=dtypes)
        started = time.perf_counter()
        results = harness.check_cases(spec, cases)
        rows.extend(r.as_json() for r in results)
        bad = [r for r in results if r.ok is False]
        print(f"{name} ({backend}): {sum(r.ok is True for r in results)} ok, {len(bad)} failed, "
              f"{sum(r.ok is None for r in results)} skipped in {time.perf_counter() - started:.1f} s", flush=True)
        for r in bad:
            print(f"  FAILED {r.error}", flush=True)
        _write(out, f"check-{backend}", rows)
    _write(out, f"check-{backend}", rows)
    return rows


def _torch_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def summary(out: Path) -> int:
    """Print every figure and the issue's targets; exit 1 if a check failed."""
    rows = []
    for stage in ("bench_triton", "bench_pallas", "check_triton", "check_pallas"):
        path = out / f"{stage}.json"
        if path.exists():
            rows += json.loads(path.read_text())
    bench = [r for r in rows if r["what"] == "bench"]
    checks = [r for r in rows if r["what"] == "check"]
    if bench:
        print(f"device: {bench[0]['device']}; measured copy bandwidth: {_fmt(bench[0].get('measured_gbps'), '.0f')} GB/s")
        header = f"{'kernel':<11}{'backend':<8}{'dtype':<9}{'shape':<17}{'params':<13}{'ms':>8}{'GB/s':>7}{'TFLOP/s':>9}{'%peakBW':>8}{'%measBW':>8}{'%peakFL':>8}  vs baseline"
        print(header)
        for r in bench:
            params = ",".join(f"{k}={v}" for k, v in r["params"].items())
            print(f"{r['kernel']:<11}{r['backend']:<8}{r['dtype']:<9}{r['shape']:<17}{params:<13}"
                  f"{_fmt(r['median_ms'], '.3f'):>8}{_fmt(r['gbps'], '.0f'):>7}{_fmt(r['tflops'], '.1f'):>9}"
                  f"{_pct(r['fraction_of_peak_bandwidth']):>8}{_pct(r['fraction_of_measured_bandwidth']):>8}"
                  f"{_pct(r['fraction_of_peak_flops']):>8}  {_fmt(r['speedup_vs_baseline'], '.2f')}x "
                  f"{r['baseline']} ({_fmt(r['baseline_ms'], '.3f')} ms){' ERROR ' + r['error'] if r.get('error') else ''}"
                  f"{' (' + r['skipped_reason'] + ')' if r.get('skipped_reason') else ''}")
        print("targets (issue 6):")
        for kernel, backend, dtypes, params, field, threshold in TARGETS:
            for dtype in dtypes:
                match = [r for r in bench if r["kernel"] == kernel and r["backend"] == backend and r["dtype"] == dtype
                         and all(r["params"].get(k) == v for k, v in params.items())]
                value = match[0].get(field) if match else None
                verdict = "unmeasured" if value is None else ("met" if value >= threshold else "MISSED")
                print(f"  {kernel} {backend} {dtype}{' causal' if params.get('causal') else ''} {field} >= {threshold}: "
                      f"{_fmt(value, '.3f')} {verdict}")
    failed = [r for r in checks if r["ok"] is False]
    if checks:
        print(f"checks: {sum(r['ok'] is True for r in checks)} ok, {len(failed)} failed, "
              f"{sum(r['ok'] is None for r in checks)} skipped")
        for r in failed:
            print(f"  FAILED {r['error']}")
    return 1 if failed else 0


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def time_cli_check_all() -> int:
    """The CPU target: `workbench kernels check --all` (forward and backward) within 180 s on the 2-core machine.

    Printed beside `python -c "import torch, jax"` measured in the same run, the floor that any
    command using both frameworks pays.
    """
    import subprocess
    import time

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, jax"], check=True, env=env)
    imports_s = time.perf_counter() - started
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench", "kernels", "check", "--all", "--json"],
                          capture_output=True, env=env)
    check_s = time.perf_counter() - started
    print(f"kernels check --all: {check_s:.1f} s (target <= 180 s; exit {done.returncode}); "
          f"import torch, jax: {imports_s:.1f} s; ratio {check_s / imports_s:.1f}x")
    return done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["bench-triton", "bench-pallas", "check-triton", "check-pallas", "summary", "all", "cli-check-all"],
                        default="all")
    parser.add_argument("--gpu", action="store_true", help="expect a GPU (fail fast without one)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmark-results")))
    parser.add_argument("--kernels", nargs="*", default=None)
    parser.add_argument("--dtypes", nargs="*", default=None, help="only these dtypes (checks)")
    parser.add_argument("--json", action="store_true", help="print the stage's results as JSON last")
    args = parser.parse_args()
    if args.gpu:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch and jax share the GPU
    elif not _torch_gpu():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from workbench.kernels.registry import builtin_names

    kernels = args.kernels or builtin_names()
    if args.gpu and args.stage.endswith("triton") and not _torch_gpu():
        print("--gpu given but torch sees no GPU", file=sys.stderr)
        return 2
    if args.stage == "cli-check-all":
        return time_cli_check_all()
    stages = ["check-triton", "check-pallas", "bench-triton", "bench-pallas"] if args.stage == "all" else [args.stage]
    rows: list[dict] = []
    for stage in stages:
        if stage == "summary":
            return summary(args.out)
        what, backend = stage.split("-")
        if what == "bench":
            rows += stage_bench(backend, args.out, kernels)
        else:
            rows += stage_check(backend, args.out, kernels, args.dtypes)
    if args.json:
        print(json.dumps(rows, default=str))
    return summary(args.out) if args.stage == "all" else 0


if __name__ == "__main__":
    sys.exit(main())
