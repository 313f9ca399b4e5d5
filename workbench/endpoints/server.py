"""The endpoint's server process: one ONNX model behind the KServe v2 HTTP protocol.

Started by `wb.endpoints.deploy` as `python -m workbench.endpoints.server CONFIG.json` with the
slice's environment (so `CUDA_VISIBLE_DEVICES` and the thread counts are in place before ONNX
Runtime starts). Starlette on uvicorn: the smallest well-kept ASGI stack (FastAPI adds request
models and OpenAPI we do not need: the protocol is KServe's, and the checks below give the
messages the protocol's errors should carry). Routes:

- `GET /v2/health/live`, `GET /v2/health/ready`: open to anyone (they tell nothing about the model);
- `GET /v2`, `GET /v2/models/{name}`, `GET /v2/models/{name}/ready`, `POST /v2/models/{name}/infer`,
  `GET /metrics` (Prometheus text): with `Authorization: Bearer TOKEN` when the endpoint has a token.

Every bad request is a 4xx whose `{"error": ...}` names what is wrong; the batcher and the other
requests go on. A watchdog thread renews the slice's lease and ends the process when the lease
ends or the endpoint is stopped in the database (e.g. from another node).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench.endpoints.batcher import MicroBatcher, default_threads
from workbench.endpoints.signature import V2_TO_NUMPY, Signature, TensorSpec, open_session, session_signature

DEFAULT_MAX_BODY_BYTES = 16 * 1024**2
_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class RateWindow:
    """Events per second over the last `window_s` seconds, in one-second buckets (for the sidebar's
    requests/s: a Prometheus server would take `rate()` of the counter, a sidebar has none)."""

    def __init__(self, window_s: int = 10) -> None:
        self.window_s = window_s
        self._counts = [0] * (window_s + 1)
        self._seconds = [0] * (window_s + 1)

    def add(self) -> None:
        now = int(time.monotonic())
        slot = now % len(self._counts)
        if self._seconds[slot] != now:
            self._seconds[slot], self._counts[slot] = now, 0
        self._counts[slot] += 1

    def per_second(self) -> float:
        now = int(time.monotonic())
        total = sum(c for c, s in zip(self._counts, self._seconds, strict=True) if now - self.window_s <= s < now)
        return total / self.window_s


class BadRequest(Exception):
    """A request the protocol refuses: its status and the message that names what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


class ModelServer:
    """The model, its batcher and metrics; `app` is the Starlette application serving them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.token: str | None = config.get("token")
        self.max_body_bytes = int(config.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
        self.session = open_session(config["model_path"], config.get("providers"), config.get("threads"))
        self.signature: Signature = session_signature(self.session)
        self._output_names = [o.name for o in self.signature.outputs]
        self.registry = CollectorRegistry()
        self.requests = Counter("workbench_endpoint_requests", "Inference requests by HTTP status.",
                                ["model", "code"], registry=self.registry)
        self.latency = Histogram("workbench_endpoint_request_latency_seconds", "Time from request to response.",
                                 ["model"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.batch_size = Histogram("workbench_endpoint_batch_size", "Rows per model run.", ["model"],
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.batch_latency = Histogram("workbench_endpoint_batch_latency_seconds", "Time of one model run.",
                                       ["model"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.rate = RateWindow()
        Gauge("workbench_endpoint_requests_per_second", "Requests answered per second over the last 10 s.",
              registry=self.registry).set_function(self.rate.per_second)
        # Children of the labelled metrics, looked up once rather than on every request.
        self._request_latency = self.latency.labels(self.name)
        self._batch_rows = self.batch_size.labels(self.name)
        self._batch_seconds = self.batch_latency.labels(self.name)
        self.batcher = MicroBatcher(
            self._run, max_batch_size=int(config.get("max_batch_size", 32)), max_wait_ms=float(config.get("max_wait_ms", 2.0)),
            batchable=self.signature.batchable, on_batch=self._observe_batch,
        )
        self.app = Starlette(routes=[
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route("/v2", self.server_metadata),
            Route("/v2/models/{name}", self.model_metadata),
            Route("/v2/models/{name}/ready", self.model_ready),
            Route("/v2/models/{name}/infer", self.infer, methods=["POST"]),
            Route("/metrics", self.metrics),
        ], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.batcher.start()
        yield
        await self.batcher.stop()

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self._output_names, inputs)  # type: ignore[no-any-return]

    def _observe_batch(self, rows: int, seconds: float) -> None:
        self._batch_rows.observe(rows)
        self._batch_seconds.observe(seconds)

    # -- checks -------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise BadRequest(401, "this endpoint needs its bearer token: send 'Authorization: Bearer TOKEN' "
                                  "(the token printed by `workbench endpoints deploy`)")

    def _model(self, request: Request) -> None:
        name = request.path_params["name"]
        if name != self.name:
            raise BadRequest(404, f"no model {name!r} on this endpoint; it serves {self.name!r}")

    async def _body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BadRequest(413, f"request body of {int(declared):,} bytes is over this endpoint's limit of {self.max_body_bytes:,} bytes")
        if declared is not None and declared.isdigit():
            return _parse(await request.body())
        chunks, size = [], 0  # chunked: read no further than the limit
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BadRequest(413, f"request body is over this endpoint's limit of {self.max_body_bytes:,} bytes")
            chunks.append(chunk)
        return _parse(b"".join(chunks))

    def _tensors(self, body: dict[str, Any]) -> dict[str, np.ndarray]:
        specs = {t.name: t for t in self.signature.inputs}
        given: dict[str, np.ndarray] = {}
        for item in body["inputs"]:
            if not isinstance(item, dict):
                raise BadRequest(400, "each input must be an object with name, shape, datatype and data")
            name = item.get("name")
            if name not in specs:
                raise BadRequest(400, f"unknown input {name!r}; model {self.name!r} takes {sorted(specs)}")
            given[name] = _tensor(item, specs[name])
        missing = sorted(set(specs) - set(given))
        if missing:
            raise BadRequest(400, f"missing input(s) {missing}; model {self.name!r} takes {sorted(specs)}")
        if self.signature.batchable:
            rows = {a.shape[0] for a in given.values()}
            if len(rows) > 1:
                raise BadRequest(400, f"inputs disagree on the batch dimension: {sorted(rows)}")
            if rows and next(iter(rows)) > self.batcher.max_batch_size:
                raise BadRequest(400, f"batch of {next(iter(rows))} rows is over max_batch_size={self.batcher.max_batch_size}")
        return given

    # -- routes -------------------------------------------------------------------------------
    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        return _json({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        return await self._guard(request, lambda: {"name": "workbench", "version": "2", "extensions": []})

    async def model_metadata(self, request: Request) -> Response:
        def meta() -> dict[str, Any]:
            self._model(request)
            return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx", **self.signature.as_json()}

        return await self._guard(request, meta)

    async def model_ready(self, request: Request) -> Response:
        def ready() -> dict[str, Any]:
            self._model(request)
            return {"name": self.name, "ready": True}

        return await self._guard(request, ready)

    async def metrics(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except BadRequest as exc:
            return _json({"error": exc.message}, exc.status)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def _guard(self, request: Request, answer: Any) -> Response:
        try:
            self._authorize(request)
            return _json(answer())
        except BadRequest as exc:
            return _json({"error": exc.message}, exc.status)

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        status = 200
        self.batcher.arriving += 1
        queued = False
        try:
            self._authorize(request)
            self._model(request)
            inputs = self._tensors(await self._body(request))
            self.batcher.arriving -= 1
            queued = True
            outputs = await self.batcher.infer(inputs)
            body = {"model_name": self.name, "model_version": "1", "outputs": [
                {"name": spec.name, "shape": list(out.shape), "datatype": spec.datatype, "data": out.ravel()}
                for spec, out in zip(self.signature.outputs, outputs, strict=True)
            ]}
            return _json(body)
        except BadRequest as exc:
            status = exc.status
            return _json({"error": exc.message}, exc.status)
        except Exception as exc:  # noqa: BLE001 - the model refused inputs the checks let through
            status = 400
            return _json({"error": f"model {self.name!r} could not run on these inputs: {str(exc).splitlines()[0][:300]}"}, 400)
        finally:
            if not queued:
                self.batcher.arriving -= 1
            self.requests.labels(self.name, str(status)).inc()
            if status == 200:
                self.rate.add()
            self._request_latency.observe(time.perf_counter() - started)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadRequest(400, 'request body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    return body


def _tensor(item: dict[str, Any], spec: TensorSpec) -> np.ndarray:
    """One KServe v2 JSON tensor as a numpy array, checked against what the model takes."""
    datatype, shape, data = item.get("datatype"), item.get("shape"), item.get("data")
    if datatype not in V2_TO_NUMPY:
        raise BadRequest(400, f"input {spec.name!r} has datatype {datatype!r}; give {spec.datatype}")
    if datatype != spec.datatype:
        raise BadRequest(400, f"input {spec.name!r} is {datatype}; the model takes {spec.datatype}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(400, f"input {spec.name!r} needs a shape: a list of sizes, e.g. {[1 if d < 0 else d for d in spec.shape]}")
    if len(shape) != len(spec.shape) or any(want >= 0 and have != want for have, want in zip(shape, spec.shape, strict=True)):
        wanted = ["N" if d < 0 else d for d in spec.shape]
        raise BadRequest(400, f"input {spec.name!r} has shape {shape}; the model takes {wanted}")
    if spec.shape and spec.shape[0] < 0 and shape[0] < 1:
        raise BadRequest(400, f"input {spec.name!r} has an empty batch; give at least one row")
    try:
        array = np.asarray(data, dtype=spec.dtype)
    except (TypeError, ValueError) as exc:
        raise BadRequest(400, f"input {spec.name!r}: data is not {datatype} numbers ({exc})") from None
    expected = int(np.prod(shape))
    if array.size != expected:
        raise BadRequest(400, f"input {spec.name!r} has {array.size} values; shape {shape} needs {expected}")
    return array.reshape(shape)


# -- the process ------------------------------------------------------------------------------
def _watch(config: dict[str, Any], server: Any, wb: Any) -> None:
    """Renew the lease while serving; end the process when the lease or the endpoint has ended.

    One small query every `watch_s` (2 s): about 1 ms of CPU a second. `wb`'s store is opened
    before serving starts, so its one-time cost (migrations checked, imports) is not paid by the
    first requests."""
    from workbench.endpoints.service import end_for_reason, record_end

    lease_id, endpoint_id = config["lease_id"], config["endpoint_id"]
    poll_s = float(config.get("watch_s", 2.0))
    renewed = time.monotonic()
    try:
        while not server.should_exit:
            time.sleep(poll_s)
            reason, ttl_s = end_for_reason(wb, endpoint_id, lease_id)
            if reason is not None:
                record_end(wb, endpoint_id, reason)
                server.should_exit = True
                return
            if time.monotonic() - renewed >= max(ttl_s / 3, poll_s):
                with contextlib.suppress(Exception):
                    wb.slices.renew(lease_id)
                renewed = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - a watchdog that dies must not leave a server with no owner
        print(f"watchdog stopped: {exc!r}", file=sys.stderr, flush=True)
        server.should_exit = True
    finally:
        wb.close()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = list(sys.argv[1:] if argv is None else argv)
    config_path = Path(args[0])
    config = orjson.loads(config_path.read_bytes())
    config.setdefault("threads", default_threads(dict(os.environ)))
    model = ModelServer(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY on Linux. Without it a response written as headers
    # then body waits for the client's delayed ACK: 40 ms per request on loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((config.get("host", "127.0.0.1"), int(config.get("port", 0))))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        model.app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2,
    ))
    if config.get("lease_id") and config.get("endpoint_id"):
        from workbench.api import Workbench
        from workbench.endpoints.service import end_for_reason

        wb = Workbench()
        end_for_reason(wb, config["endpoint_id"], config["lease_id"])  # opens the store now
        threading.Thread(target=_watch, args=(config, server, wb), name="workbench-endpoint-watch", daemon=True).start()
    ready_path = Path(config["ready_path"])
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets=sockets)
        tmp = ready_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"port": port, "pid": os.getpid(), "providers": model.session.get_providers()}))
        tmp.replace(ready_path)  # the deployer sees the whole file or none

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])  # uvloop and httptools when installed; SIGTERM ends it gracefully


if __name__ == "__main__":
    main()
