"""The backward passes on a GPU, in one run of at most 5 minutes (issue 22).

    OUT=/tmp/k python3 benchmarks/kernels_bwd_gpu.py --out "$OUT"          # on the GPU machine
    python benchmarks/kernels_bwd_gpu.py --small --out /tmp/k              # dry run here: tiny shapes, interpreters

Each step runs in its own process under `timeout` (a step that fails or runs out of time is
reported and the others go on), one after the other so timings are undisturbed:

  tests       the `requires_gpu` kernel tests (forward and backward checks, fp16 and bf16)
  norms       layer-norm and RMS-norm backward (8192x8192) vs F.layer_norm / F.rms_norm's autograd
              backward, and GB/s vs a measured device-to-device copy
  attention   attention backward vs SDPA's flash backward, B4 H32 S4096 D128, fp16 and bf16,
              causal and not
  matmul      Pallas matmul vs jnp.dot, fp16 4096^3, the current blocks and a few others
  lm          examples/kernels_lm.py: one training step with the Triton kernels vs the torch references
  pallas_bwd  the Pallas backward passes vs XLA's autograd of the jnp operation (for the record)

Timings of the kernels and of their baselines are taken in the same process on the same inputs
(`speedup_vs_baseline` = baseline ms / kernel ms). Writes $OUT/<step>.json, $OUT/<step>.log,
$OUT/summary.json and $OUT/summary.md, and prints the summary with the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# step: seconds it may take on the GPU (the sum, with start-up, stays under 300)
STEPS = {"tests": 200, "norms": 30, "attention": 150, "matmul": 30, "lm": 50, "pallas_bwd": 30}
TARGETS = [
    # step, kernel, pass, params, field, threshold
    ("norms", "layer_norm", "bwd", {}, "fraction_of_measured_bandwidth", 0.85),
    ("norms", "layer_norm", "bwd", {}, "speedup_vs_baseline", 1.0),
    ("norms", "rms_norm", "bwd", {}, "fraction_of_measured_bandwidth", 0.85),
    ("norms", "rms_norm", "bwd", {}, "speedup_vs_baseline", 1.0),
    ("attention", "attention", "bwd", {"causal": True}, "speedup_vs_baseline", 1.0),
    ("attention", "attention", "bwd", {"causal": False}, "speedup_vs_baseline", 1.0),
    ("matmul", "matmul", "fwd", {"blocks": "current"}, "speedup_vs_baseline", 0.9),
    ("lm", "kernels_lm", "train step", {}, "speedup_vs_baseline", 1.1),
]


# -- the steps (each in its own process) ------------------------------------------------------------
def _bench(name: str, backend: str, pass_: str, shapes: list, dtypes: list[str]) -> list[dict]:
    from workbench.kernels import harness
    from workbench.kernels.registry import builtin_spec

    spec = builtin_spec(name, backend)
    side = harness.side_for(backend)
    measured = harness._TorchSide().measured_bandwidth_gbps() if side.gpu and backend == "triton" else None
    device_spec = None
    if side.gpu:
        from workbench.inventory.catalog import lookup

        device_spec = lookup(side.device_name())
    cases = harness.cases_for(spec, "gpu", what="bench", shapes=shapes, dtypes=dtypes, passes=[pass_])
    results = harness.bench_cases(spec, cases, measured_gbps=measured, device_spec=device_spec)
    for r in results:
        print(f"  {r.label}: {harness._detail(r)}", flush=True)
    return [r.as_json() for r in results]


def step_tests(small: bool) -> list[dict]:
    if small:
        return [{"skipped": "no GPU: the requires_gpu tests skip here"}]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "requires_gpu",
                           "tests/kernels/test_kernels_gpu.py"], cwd=ROOT, capture_output=True, text=True, check=False)
    print(done.stdout[-3000:], done.stderr[-2000:], flush=True)
    return [{"returncode": done.returncode, "tail": done.stdout[-1500:]}]


def step_norms(small: bool) -> list[dict]:
    shape = (65, 130) if small else (8192, 8192)
    return [row for name in ("layer_norm", "rms_norm")
            for row in _bench(name, "triton", "bwd", [shape], ["float16", "bfloat16"])]


def step_attention(small: bool) -> list[dict]:
    shape = (1, 2, 77, 64) if small else (4, 32, 4096, 128)
    return _bench("attention", "triton", "bwd", [shape], ["float16", "bfloat16"])


def step_matmul(small: bool) -> list[dict]:
    """The Pallas matmul at its current blocks and a few others, each against jnp.dot in this process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from workbench.kernels.harness import _JaxSide
    from workbench.kernels.registry import load_module

    module = load_module("matmul")
    side = _JaxSide()
    n = 64 if small else 4096
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal((n, n), dtype="float32")).astype(jnp.float16) for _ in range(2))
    baseline_ms, _ = side.time_ms(lambda: jnp.dot(a, b)) if side.gpu else (None, None)
    rows = []
    sweep = [module.GPU_BLOCKS, (128, 128, 32, 4, 4), (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (128, 128, 64, 4, 4)]
    for blocks in sweep:
        row = {"kernel": "matmul", "backend": "pallas", "pass": "fwd", "dtype": "float16", "shape": f"{n}x{n}x{n}",
               "params": {"blocks": "current" if blocks == module.GPU_BLOCKS else list(blocks)}, "baseline": "jnp.dot",
               "baseline_ms": baseline_ms}
        try:
            kernel = module.pallas_kernel(not side.gpu, blocks)
            out = kernel(a, b)
            row["max_abs_err_vs_jnp_dot"] = float(jnp.abs(out.astype(jnp.float32) - jnp.dot(a, b).astype(jnp.float32)).max())
            if side.gpu:
                row["median_ms"], _ = side.time_ms(lambda: kernel(a, b))
                row["tflops"] = 2 * n**3 / (row["median_ms"] * 1e-3) / 1e12
                row["speedup_vs_baseline"] = baseline_ms / row["median_ms"]
        except Exception as exc:  # noqa: BLE001 - a configuration that does not compile is a result
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(f"  matmul pallas blocks={row['params']['blocks']}: {row.get('median_ms')} ms, "
              f"{row.get('speedup_vs_baseline')} x jnp.dot {row.get('error', '')}", flush=True)
        rows.append(row)
    jax.clear_caches()
    return rows


def step_lm(small: bool) -> list[dict]:
    """One training step of examples/kernels_lm.py, Triton kernels vs the torch references (bf16 on a GPU)."""
    import importlib.util
    from dataclasses import asdict, replace

    spec = importlib.util.spec_from_file_location("kernels_lm", ROOT / "examples" / "kernels_lm.py")
    lm = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lm  # dataclasses look their module up there
    spec.loader.exec_module(lm)
    from workbench import Workbench

    wb = Workbench()
    if small:
        cfg = replace(lm.SMALL, steps=3)
    else:
        cfg = replace(lm.Config(), layers=4, d_model=1024, heads=8, seq=2048, batch=8, steps=8, dtype="bfloat16")
    seconds = {}
    for label, use_kernels in (("reference", False), ("kernels", True)):
        step_s: list[float] = []
        losses = lm.train(cfg, "torch", use_kernels, wb, step_seconds=step_s)
        seconds[label] = sorted(step_s[2:] or step_s)[len(step_s[2:] or step_s) // 2]  # median after 2 warm-up steps
        print(f"  lm {label}: median step {seconds[label] * 1e3:.1f} ms, loss {losses[0]:.3f} -> {losses[-1]:.3f}",
              flush=True)
    return [{"kernel": "kernels_lm", "backend": "triton", "pass": "train step", "params": {}, "config": asdict(cfg),
             "median_ms": seconds["kernels"] * 1e3, "baseline": "torch references", "baseline_ms": seconds["reference"] * 1e3,
             "speedup_vs_baseline": seconds["reference"] / seconds["kernels"]}]


def step_pallas_bwd(small: bool) -> list[dict]:
    rows = []
    for name, shape in (("layer_norm", (65, 130) if small else (8192, 8192)),
                        ("rms_norm", (65, 130) if small else (8192, 8192)),
                        ("attention", (1, 2, 77, 64) if small else (4, 32, 4096, 128))):
        try:
            rows += _bench(name, "pallas", "bwd", [shape], ["float16"])
        except Exception as exc:  # noqa: BLE001 - keep going: one kernel must not cost the others' figures
            rows.append({"kernel": name, "backend": "pallas", "pass": "bwd", "error": f"{type(exc).__name__}: {exc}"})
    return rows


# -- the driver ---------------------------------------------------------------------------------------
def run_step(step: str, out: Path, small: bool, timeout_s: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if small:
        env.setdefault("TRITON_INTERPRET", "1")
        env.setdefault("WORKBENCH_HOME", str(out / "home"))
    started = time.perf_counter()
    with open(out / f"{step}.log", "w") as log:
        try:
            done = subprocess.run(["timeout", str(int(timeout_s)), sys.executable, __file__, "--step", step, "--out", str(out)]
                                  + (["--small"] if small else []), stdout=log, stderr=subprocess.STDOUT, env=env,
                                  cwd=ROOT, check=False, timeout=timeout_s + 15)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = 124
    seconds = time.perf_counter() - started
    path = out / f"{step}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    status = "ok" if code == 0 else ("timed out" if code in (124, 137) else f"failed (exit {code})")
    print(f"[{step}] {status} in {seconds:.0f} s; {len(rows)} rows; log {out / (step + '.log')}", flush=True)
    if code != 0:
        print("".join((out / f"{step}.log").read_text().splitlines(keepends=True)[-15:]), flush=True)
    return {"step": step, "status": status, "seconds": round(seconds, 1), "rows": rows}


def summarize(steps: list[dict], out: Path) -> str:
    lines = ["# Kernels II (backward passes) on a GPU", ""]
    env_path = out / "env.txt"
    if env_path.exists():
        lines += ["```", env_path.read_text().strip(), "```", ""]
    lines += ["| step | status | s |", "| --- | --- | --- |"] + [f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in steps]
    lines += ["", "| kernel | backend | pass | dtype | shape | params | ms | GB/s | TFLOP/s | % of measured BW | baseline ms "
              "| x baseline | baseline |", "| --- " * 13 + "|"]
    for s in steps:
        for r in s["rows"]:
            if "kernel" not in r:
                continue
            lines.append("| " + " | ".join(str(x) for x in (
                r["kernel"], r.get("backend"), r.get("pass"), r.get("dtype", "-"), r.get("shape", "-"), r.get("params", {}),
                _fmt(r.get("median_ms"), ".3f"), _fmt(r.get("gbps"), ".0f"), _fmt(r.get("tflops"), ".1f"),
                _fmt(r.get("fraction_of_measured_bandwidth"), ".0%"), _fmt(r.get("baseline_ms"), ".3f"),
                _fmt(r.get("speedup_vs_baseline"), ".2f"), r.get("baseline") or r.get("error") or r.get("skipped_reason") or ""))
                + " |")
    lines += ["", "Targets (issue 22):"]
    by_step = {s["step"]: s["rows"] for s in steps}
    for step, kernel, pass_, params, field, threshold in TARGETS:
        rows = [r for r in by_step.get(step, []) if r.get("kernel") == kernel and r.get("pass") == pass_
                and all(r.get("params", {}).get(k) == v for k, v in params.items())]
        for r in rows or [{}]:
            value = r.get(field)
            verdict = "unmeasured" if value is None else ("met" if value >= threshold else "MISSED")
            lines.append(f"- {kernel} {pass_} {r.get('dtype', '')} {params or ''} {field} >= {threshold}: "
                         f"{_fmt(value, '.3f')} {verdict}")
    return "\n".join(lines) + "\n"


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/kernels_bwd_gpu")))
    parser.add_argument("--small", action="store_true", help="tiny shapes, in the interpreters (a dry run without a GPU)")
    parser.add_argument("--step", choices=list(STEPS), help="run one step here (the driver runs each in a process)")
    parser.add_argument("--steps", nargs="*", choices=list(STEPS), default=list(STEPS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step:
        rows = globals()[f"step_{args.step}"](args.small)
        (args.out / f"{args.step}.json").write_text(json.dumps(rows, indent=1, default=str))
        return 0
    env = subprocess.run(["bash", "-c", "date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm "
                          "--format=csv 2>&1 | head -3; " + f"{sys.executable} -c \"import torch, triton, jax; "
                          "print('torch', torch.__version__, 'triton', triton.__version__, 'jax', jax.__version__)\""],
                         capture_output=True, text=True, timeout=60, check=False)
    (args.out / "env.txt").write_text(env.stdout + env.stderr)
    print(env.stdout, flush=True)
    scale = 4.0 if args.small else 1.0  # the interpreters are slower than a GPU at the tiny shapes
    steps = [run_step(step, args.out, args.small, STEPS[step] * scale) for step in args.steps]
    (args.out / "summary.json").write_text(json.dumps(steps, indent=1, default=str))
    text = summarize(steps, args.out)
    (args.out / "summary.md").write_text(text)
    print(text, flush=True)
    return 0 if all(s["status"] == "ok" for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
