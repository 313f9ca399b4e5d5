"""Serving benchmark: an endpoint's latency and throughput against the model alone, in the same run.

    python benchmarks/serving.py [--seconds 5] [--concurrency 1,8,32] [--slice cpu:2] [--json OUT]

A small MLP (64 → 256 → 256 → 10, the issue's "small MLP") is exported with
`torch.onnx.export(dynamo=True)`, deployed on a CPU slice (`wb.endpoints.deploy`: its own server
process, ONNX Runtime, the micro-batcher with max_batch_size=32, max_wait_ms=2) and loaded by
`wb.endpoints.bench`: a closed loop of httpx clients over loopback after a warm-up. The same run
measures raw `session.run` in this process and torch eager under `inference_mode`, then prints the
issue's targets with the figures and ratios:

- serving overhead at concurrency 1: p50 over raw `session.run` p50, target ≤ 1 ms;
- batching gain: requests/s at concurrency 8 over requests/s at 1, target ≥ 2×;
- tail amplification at concurrency 8: p99/p50, target ≤ 3.

The load generator runs in this process, beside the server on the same cores: on a 2-core machine
the client's own time is part of every figure (as it is for any user of the endpoint there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--slice", default="cpu:1")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from workbench import Workbench

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10),
    ).eval()
    levels = [int(x) for x in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as home, Workbench(home=home) as wb:
        exported = wb.endpoints.export(model, torch.randn(4, 64), name="mlp")
        print(f"export: {exported!r}")
        started = time.perf_counter()
        ep = wb.endpoints.deploy(exported.path, slice=args.slice, name="mlp", max_batch_size=32, max_wait_ms=2)
        print(f"deploy: ready in {time.perf_counter() - started:.2f} s at {ep.url} on {args.slice} "
              f"(providers {ep.config.get('providers_used')})")
        try:
            result = wb.endpoints.bench(ep, concurrency=levels, seconds=args.seconds, warmup_s=1.0, model=model)
        finally:
            wb.endpoints.stop(ep)
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared with other work)")
    print(f"{'concurrency':>11} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p99/p50':>8}"
          f" {'server CPU ms/req':>18} {'client CPU ms/req':>18}")
    for r in result.results:
        cpu = result.cpu_ms_per_request.get(r["concurrency"], {})
        print(f"{r['concurrency']:>11} {r['requests']:>9} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {result.tail_amplification(r['concurrency']) or 0:>8.2f}"
              f" {cpu.get('server') or float('nan'):>18.3f} {cpu.get('client') or float('nan'):>18.3f}")
    base = result.baseline
    eager = result.torch_eager or {}
    print(f"baseline raw session.run (this process): p50 {base['p50_ms']:.4f} ms, {base['rps']:,.0f} runs/s")
    if eager:
        print(f"baseline torch eager (inference_mode):   p50 {eager['p50_ms']:.4f} ms, {eager['rps']:,.0f} runs/s")
    overhead, gain, tail = result.serving_overhead_ms, result.batching_gain, result.tail_amplification(8)
    first = min(result.results, key=lambda r: r["concurrency"])
    print("\ntargets (same-run figures):")
    if overhead is not None:
        print(f"  serving overhead at c={first['concurrency']}: {overhead:.3f} ms p50 over raw session.run "
              f"(endpoint p50 / raw p50 = {first['p50_ms'] / base['p50_ms']:.0f}×); target ≤ 1 ms: "
              f"{'met' if overhead <= 1 else 'NOT met'}")
    if gain is not None:
        print(f"  batching gain c=8 / c=1: {gain:.2f}× requests/s; target ≥ 2×: {'met' if gain >= 2 else 'NOT met'}")
    if tail is not None:
        print(f"  tail amplification at c=8: p99/p50 = {tail:.2f}; target ≤ 3: {'met' if tail <= 3 else 'NOT met'}")
    one = result.cpu_ms_per_request.get(first["concurrency"], {})
    if one.get("server") is not None:
        print(f"  CPU per request at c={first['concurrency']}: server {one['server']:.3f} ms + client (httpx) {one['client']:.3f} ms "
              f"= {one['server'] + one['client']:.3f} ms; on an idle machine the overhead cannot be less than this sum")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**result.as_json(), **result.derived(), "load_average": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()
