"""Latency and throughput of an endpoint, beside the same-run cost of the model alone.

A closed loop: at concurrency C, C clients each send a request and wait for its answer before
sending the next (httpx over loopback, one connection each), first for `warmup_s` (not counted),
then for `seconds`. Per concurrency: requests, requests/s, p50/p95/p99 latency. The baseline is
raw `onnxruntime` `session.run` on the same input in this process (and, given the torch module,
torch eager under `inference_mode`), measured in the same run so the ratios compare like with like.
Derived: serving overhead (p50 at the lowest concurrency minus the raw p50), batching gain
(requests/s at 8, or the highest concurrency, over requests/s at 1) and tail amplification (p99/p50).
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.endpoints.signature import Signature, open_session
from workbench.errors import BackendUnavailable, InvalidRequest


@dataclass
class BenchResult:
    endpoint_id: str
    results: list[dict[str, Any]]
    baseline: dict[str, float]
    torch_eager: dict[str, float] | None = None
    errors: int = 0
    seconds: float = 0.0
    # Per concurrency: CPU milliseconds per answered request in the server process and in this
    # one (the load generator), warm-up included: what each request costs, which, unlike
    # latency, other load on a shared machine does not inflate much.
    cpu_ms_per_request: dict[int, dict[str, float | None]] = field(default_factory=dict)

    def _at(self, concurrency: int) -> dict[str, Any] | None:
        return next((r for r in self.results if r["concurrency"] == concurrency), None)

    @property
    def serving_overhead_ms(self) -> float | None:
        first = min(self.results, key=lambda r: r["concurrency"]) if self.results else None
        return None if first is None else first["p50_ms"] - self.baseline["p50_ms"]

    @property
    def batching_gain(self) -> float | None:
        one = self._at(1)
        other = self._at(8) or (max(self.results, key=lambda r: r["concurrency"]) if self.results else None)
        if one is None or other is None or other is one or not one["rps"]:
            return None
        return float(other["rps"] / one["rps"])

    def tail_amplification(self, concurrency: int = 8) -> float | None:
        r = self._at(concurrency)
        return None if r is None or not r["p50_ms"] else float(r["p99_ms"] / r["p50_ms"])

    def as_json(self) -> dict[str, Any]:
        """The contract of `workbench endpoints bench --json`: `results` and `baseline`."""
        return {"results": self.results, "baseline": self.baseline}

    def derived(self) -> dict[str, Any]:
        return {
            "serving_overhead_ms": self.serving_overhead_ms, "batching_gain": self.batching_gain,
            "tail_amplification": {r["concurrency"]: self.tail_amplification(r["concurrency"]) for r in self.results},
            "torch_eager": self.torch_eager, "errors": self.errors, "cpu_ms_per_request": self.cpu_ms_per_request,
        }

    def __repr__(self) -> str:
        parts = ", ".join(f"c={r['concurrency']}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms" for r in self.results)
        return f"<BenchResult {self.endpoint_id} {parts}; raw session.run p50 {self.baseline['p50_ms']:.3f} ms>"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("concurrency", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99/p50"))
        rows = "".join(
            f"<tr><td>{r['concurrency']}</td><td>{r['requests']}</td><td>{r['rps']:.0f}</td><td>{r['p50_ms']:.2f}</td>"
            f"<td>{r['p95_ms']:.2f}</td><td>{r['p99_ms']:.2f}</td><td>{(self.tail_amplification(r['concurrency']) or 0):.2f}</td></tr>"
            for r in self.results
        )
        overhead, gain = self.serving_overhead_ms, self.batching_gain
        lines = [f"raw session.run: p50 {self.baseline['p50_ms']:.3f} ms, {self.baseline['rps']:.0f} runs/s"]
        if self.torch_eager:
            lines.append(f"torch eager (inference_mode): p50 {self.torch_eager['p50_ms']:.3f} ms")
        if overhead is not None:
            lines.append(f"serving overhead: {overhead:.2f} ms at p50")
        if gain is not None:
            lines.append(f"batching gain: {gain:.2f}×")
        return (f"<div class='workbench-bench'><table><tr>{head}</tr>{rows}</table>"
                + "<br>".join(html.escape(x) for x in lines) + "</div>")


def sample_inputs(signature: Signature, rows: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs of `rows` rows for every input (variable dimensions other than the batch: 1)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for i, spec in enumerate(signature.inputs):
        shape = tuple(rows if (d < 0 and j == 0) else (1 if d < 0 else d) for j, d in enumerate(spec.shape))
        if np.issubdtype(spec.dtype, np.floating):
            inputs[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            inputs[spec.name] = np.zeros(shape, spec.dtype) + i * 0
    return inputs


def percentiles_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = np.asarray(latencies_s, dtype=np.float64) * 1000
    p50, p95, p99 = np.percentile(values, [50, 95, 99]) if values.size else (float("nan"),) * 3
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def time_calls(call: Callable[[], Any], seconds: float, warmup_calls: int = 20) -> dict[str, float]:
    """p50 and calls/s of `call` in a closed loop on this thread."""
    for _ in range(warmup_calls):
        call()
    latencies = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        call()
        latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - start
    return {"p50_ms": percentiles_ms(latencies)["p50_ms"], "rps": len(latencies) / elapsed}


async def _closed_loop(url: str, body: bytes, headers: dict[str, str], concurrency: int, warmup_s: float,
                       seconds: float) -> tuple[list[float], int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    measuring_from = time.perf_counter() + warmup_s
    stop_at = measuring_from + seconds
    single = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def user() -> None:
        # A client (one kept-alive connection) per user: one pool shared by all users costs the
        # load generator several times more CPU per request as concurrency rises (its pool scans
        # every connection on each request), which would be measured as the endpoint's latency.
        nonlocal errors
        async with httpx.AsyncClient(limits=single, timeout=30) as client:
            while (sent := time.perf_counter()) < stop_at:
                response = await client.post(url, content=body, headers=headers)
                done = time.perf_counter()
                if sent >= measuring_from:
                    if response.status_code == 200:
                        latencies.append(done - sent)
                    else:
                        errors += 1

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies, errors


def _run_in_thread(coro_fn: Callable[[], Any]) -> Any:
    """Run a coroutine on a fresh event loop in a thread (a notebook's own loop is already running)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="workbench-bench")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_bench(endpoint: Any, *, concurrency: Sequence[int] = (1, 8, 32), seconds: float = 10.0,
              warmup_s: float = 1.0, model: Any = None) -> BenchResult:
    """Load `endpoint` at each concurrency (see the module's docstring); `model`: the torch module
    it was exported from, for the eager baseline."""
    import httpx

    from workbench.endpoints.service import auth_headers, infer_body

    levels = sorted({int(c) for c in concurrency})
    if not levels or levels[0] < 1:
        raise InvalidRequest(f"concurrency {list(concurrency)} must be whole numbers of at least 1, e.g. 1,8,32")
    if seconds <= 0 or warmup_s < 0:
        raise InvalidRequest(f"seconds={seconds} must be more than 0 and warmup_s={warmup_s} at least 0")
    signature = Signature.from_json({"inputs": endpoint.inputs, "outputs": endpoint.outputs})
    inputs = sample_inputs(signature)
    body = infer_body(signature, [], inputs)
    headers = auth_headers(endpoint.token)
    try:
        httpx.get(f"{endpoint.url}/v2/health/ready", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"endpoint {endpoint.id} at {endpoint.url} is not ready: {exc}") from None
    server = _server_process(endpoint)
    results, errors, cpu = [], 0, {}
    for level in levels:
        server_cpu_s, client_cpu_s = _cpu_s(server), time.process_time()
        latencies, failed = _run_in_thread(lambda level=level: _closed_loop(endpoint.infer_url, body, headers, level, warmup_s, seconds))
        answered = max(len(latencies), 1) * (warmup_s + seconds) / seconds  # the warm-up's requests cost CPU too
        server_ms = (_cpu_s(server) - server_cpu_s) * 1000 / answered if server is not None else None
        cpu[level] = {"server": server_ms, "client": (time.process_time() - client_cpu_s) * 1000 / answered}
        errors += failed
        results.append({"concurrency": level, "requests": len(latencies), "rps": len(latencies) / seconds,
                        **percentiles_ms(latencies)})
    # The server's providers (the CUDA one with its memory cap on a GPU slice) and thread count.
    session = open_session(endpoint.model_path, endpoint.config.get("providers"), endpoint.config.get("threads"))
    baseline_s = min(seconds, 2.0)
    baseline = time_calls(lambda: session.run(None, inputs), baseline_s)
    eager = _torch_eager(model, inputs, baseline_s) if model is not None else None
    return BenchResult(endpoint.id, results, baseline, eager, errors, seconds, cpu)


def _server_process(endpoint: Any) -> Any:
    """The endpoint's server process when it runs on this machine (psutil), else None."""
    import socket

    import psutil

    if endpoint.pid is None or endpoint.node not in (None, socket.gethostname()):
        return None
    try:
        return psutil.Process(endpoint.pid)
    except psutil.Error:
        return None


def _cpu_s(process: Any) -> float:
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
    except Exception:  # noqa: BLE001 - the server ended; the bench reports what it measured
        return 0.0
    return float(times.user + times.system)


def _torch_eager(model: Any, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, float] | None:
    try:
        import torch
    except ImportError:
        return None
    if not isinstance(model, torch.nn.Module):
        return None
    tensors = [torch.from_numpy(x) for x in inputs.values()]
    model = model.eval()

    def call() -> None:
        with torch.inference_mode():
            model(*tensors)

    return time_calls(call, seconds)
