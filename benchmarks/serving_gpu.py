"""Serving on a GPU slice: the digits CNN and a small transformer on a `0.25` fraction, with ONNX
Runtime's CUDA provider held to the lease's memory cap (`gpu_mem_limit`).

    OUT=/tmp/serving_gpu python3 benchmarks/serving_gpu.py            # the whole run, ≤ 3 minutes
    python3 benchmarks/serving_gpu.py --model cnn --out DIR            # one model (what the run starts)

For each model, in a process of its own under a timeout: export with `torch.onnx.export(dynamo=True)`
and check parity; request a `0.25` fraction of GPU 0 through `wb.slices`; deploy on it with
`wb.endpoints.deploy` (the server process gets the lease's `CUDA_VISIBLE_DEVICES` and
`gpu_mem_limit` = the lease's memory); bench it (c = 1, 8; 3 s each) beside raw `session.run` and
torch eager on the same GPU; sample the server process's GPU memory through NVML during the bench
(the peak, with the CUDA context, against the cap). Then a tight cap: the same model with
`gpu_mem_limit` set below what it uses unconstrained, in this process, to show the arena honours
the limit (it fails an allocation instead of growing past it). Prints the figures and writes
`serving_gpu.json` (and each model's JSON) under OUT.

Where onnxruntime has no CUDAExecutionProvider (the CPU-only package), it says so and writes that
in the JSON instead of failing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL_TIMEOUT_S = 85
MIB = 1024**2


def _cnn() -> tuple[Any, Any]:
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    from torch_cnn_digits import build_model

    torch.manual_seed(0)
    return build_model().eval(), torch.randn(4, 1, 8, 8)


def _transformer() -> tuple[Any, Any]:
    """A small encoder: 4 layers, d_model 256, 4 heads, sequences of 64 (about 3.2 M parameters)."""
    import torch

    torch.manual_seed(0)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = torch.nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
            self.head = torch.nn.Linear(256, 10)

        def forward(self, x: Any) -> Any:
            return self.head(self.encoder(x).mean(dim=1))

    return Encoder().eval(), torch.randn(4, 64, 256)


MODELS = {"cnn": _cnn, "transformer": _transformer}


class PeakSampler:
    """GPU memory of one process (NVML's per-process figure), sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        import pynvml

        self.nvml = pynvml
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError:
            return  # no NVIDIA driver: nothing to sample (peak stays 0)
        handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        while not self._stop.is_set():
            for handle in handles:
                try:
                    for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                        if proc.pid == self.pid and proc.usedGpuMemory:
                            self.peak_bytes = max(self.peak_bytes, int(proc.usedGpuMemory))
                except self.nvml.NVMLError:
                    pass
            time.sleep(0.01)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def one_model(name: str, out: Path, seconds: float) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import torch

    from workbench import Workbench
    from workbench.endpoints.bench import sample_inputs, time_calls
    from workbench.endpoints.signature import Signature

    report: dict[str, Any] = {"model": name, "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    model, example = MODELS[name]()
    report["parameters"] = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as home, Workbench(home=home, user="bench") as wb:
        exported = wb.endpoints.export(model, example, name=name)
        report["parity"] = [p.as_json() for p in exported.parity]
        print(f"[{name}] export: {exported!r}", flush=True)
        lease = wb.slices.request("0.25", wait=False)
        report["lease"] = {"id": lease.id, "kind": lease.kind, "memory_bytes": lease.memory_bytes, "env": lease.env}
        cap = int(lease.memory_bytes)
        print(f"[{name}] lease {lease.describe()}: memory cap {cap / MIB:,.0f} MiB, {lease.env}", flush=True)
        ep = wb.endpoints.deploy(exported.path, slice=lease, name=name, max_batch_size=32, max_wait_ms=2)
        report["endpoint_providers"] = ep.config.get("providers_used")
        print(f"[{name}] endpoint {ep.url} providers {ep.config.get('providers_used')}", flush=True)
        try:
            with PeakSampler(ep.pid) as sampler:
                result = wb.endpoints.bench(ep, concurrency=(1, 8), seconds=seconds, warmup_s=1.0)
            report["bench"] = {**result.as_json(), **result.derived()}
            report["server_peak_gpu_bytes"] = sampler.peak_bytes or None  # None: NVML saw no GPU memory of it
            report["cap_bytes"] = cap
            report["peak_within_cap"] = sampler.peak_bytes <= cap if sampler.peak_bytes else None
        finally:
            wb.endpoints.stop(ep)
            lease.release()
    # Same-run GPU baselines in this process: ONNX Runtime's CUDA provider alone, and torch eager.
    signature = Signature.from_json({"inputs": [t.as_json() for t in exported.signature.inputs], "outputs": []})
    inputs = sample_inputs(signature)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        session = ort.InferenceSession(str(exported.path), providers=[("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"])
        report["raw_cuda_session_run"] = time_calls(lambda: session.run(None, inputs), 2.0)
        del session
    if torch.cuda.is_available():
        gpu_model = model.cuda()
        tensors = [torch.from_numpy(x).cuda() for x in inputs.values()]

        def eager() -> None:
            with torch.inference_mode():
                gpu_model(*tensors)
            torch.cuda.synchronize()

        report["torch_eager_cuda"] = time_calls(eager, 2.0)
    report["tight_cap"] = tight_cap(exported.path, inputs, np)
    (out / f"serving_gpu_{name}.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def tight_cap(path: Path, inputs: dict[str, Any], np: Any) -> dict[str, Any]:
    """A cap below what the model takes at batch 256: the arena must refuse rather than exceed it."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return {"skipped": "no CUDAExecutionProvider"}
    big = {k: np.repeat(v, 256, axis=0) for k, v in inputs.items()}
    free = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"})])
    with PeakSampler(os.getpid()) as sampler:
        free.run(None, big)
        time.sleep(0.05)
    unconstrained = sampler.peak_bytes
    del free
    limit = 32 * MIB
    result: dict[str, Any] = {"unconstrained_process_peak_bytes": unconstrained, "gpu_mem_limit_bytes": limit}
    try:
        capped = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", {
            "device_id": 0, "gpu_mem_limit": limit, "arena_extend_strategy": "kSameAsRequested"})])
        capped.run(None, big)
        result["outcome"] = "ran within the limit"
    except Exception as exc:  # noqa: BLE001 - the allocation failure is the expected outcome when it does not fit
        result["outcome"] = f"refused: {str(exc).splitlines()[0][:300]}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/serving_gpu")))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model:
        report = one_model(args.model, args.out, args.seconds)
        print(json.dumps(report, indent=2, default=str), flush=True)
        return
    summary: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import onnxruntime as ort

        summary["onnxruntime"] = ort.__version__
        summary["providers"] = ort.get_available_providers()
    except ImportError as exc:
        summary["error"] = f"onnxruntime is not installed: {exc}"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        summary["gpu"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        summary["gpu"] = f"nvidia-smi did not answer: {exc}"
    print(f"GPU: {summary['gpu']}; onnxruntime {summary.get('onnxruntime')} providers {summary.get('providers')}", flush=True)
    if "CUDAExecutionProvider" not in summary.get("providers", []):
        summary["note"] = ("onnxruntime here is the CPU-only package (no CUDAExecutionProvider): the endpoints run on the "
                           "CPU and gpu_mem_limit cannot be measured; install onnxruntime-gpu for the GPU figures")
        print(summary["note"], flush=True)
    for name in MODELS:
        started = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--model", name, "--out", str(args.out), "--seconds", str(args.seconds)],
                                  capture_output=True, text=True, timeout=MODEL_TIMEOUT_S)
            (args.out / f"serving_gpu_{name}.log").write_text(proc.stdout + proc.stderr)
            ok = proc.returncode == 0
            summary[name] = json.loads((args.out / f"serving_gpu_{name}.json").read_text()) if ok else {
                "error": f"exit {proc.returncode}", "tail": (proc.stdout + proc.stderr)[-2000:]}
        except subprocess.TimeoutExpired as exc:
            summary[name] = {"error": f"timed out after {MODEL_TIMEOUT_S} s", "tail": str(exc.stdout or "")[-2000:]}
        summary[name]["wall_s"] = round(time.perf_counter() - started, 1)
        _print_model(name, summary[name])
    (args.out / "serving_gpu.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {args.out / 'serving_gpu.json'}")


def _print_model(name: str, r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"[{name}] FAILED: {r['error']}\n{r.get('tail', '')}", flush=True)
        return
    b = r.get("bench", {})
    print(f"\n[{name}] {r.get('parameters', 0):,} parameters; endpoint providers {r.get('endpoint_providers')}")
    for row in b.get("results", []):
        print(f"  c={row['concurrency']:>2}: {row['rps']:8.0f} req/s  p50 {row['p50_ms']:.2f} ms  p95 {row['p95_ms']:.2f}  p99 {row['p99_ms']:.2f}")
    base = b.get("baseline", {})
    print(f"  raw session.run in-process (the server's providers and memory cap): p50 {base.get('p50_ms', float('nan')):.3f} ms")
    for key in ("raw_cuda_session_run", "torch_eager_cuda"):
        if key in r:
            print(f"  {key}: p50 {r[key]['p50_ms']:.3f} ms, {r[key]['rps']:,.0f}/s")
    print(f"  serving overhead {b.get('serving_overhead_ms')} ms, batching gain {b.get('batching_gain')}")
    verdict = {True: "within", False: "OVER", None: "not measured (NVML saw no GPU memory of the server)"}[r.get("peak_within_cap")]
    print(f"  server GPU peak {(r.get('server_peak_gpu_bytes') or 0) / MIB:,.0f} MiB (with the CUDA context) vs cap "
          f"{r.get('cap_bytes', 0) / MIB:,.0f} MiB: {verdict}")
    print(f"  tight cap: {r.get('tight_cap')}", flush=True)


if __name__ == "__main__":
    main()
