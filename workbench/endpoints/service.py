"""`EndpointService` (`wb.endpoints`): export, deploy on a slice, query, bench and stop served models.

An endpoint is a server process (`workbench.endpoints.server`) started with its slice's
environment, recorded in the `endpoints` table. It lives as long as its lease: the server renews
the lease while it runs and exits when the lease ends (its watchdog reads the store every 2 s),
and `wb.slices.release` / `wb.slices.sweep` stop the endpoints of the leases they end at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select

from workbench.endpoints.batcher import default_threads
from workbench.endpoints.endpoint import LIVE_STATES, Endpoint, EndpointList
from workbench.endpoints.export import ExportResult, export
from workbench.endpoints.lease_end import Marked, mark_stopped
from workbench.endpoints.signature import NUMPY_TO_V2, Signature, read_signature
from workbench.errors import BackendUnavailable, Conflict, Forbidden, InvalidRequest, NotFound, WorkbenchError
from workbench.store.models.base import new_id, utcnow
from workbench.store.models.endpoints import EndpointRow

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_WAIT_MS = 2.0
DEFAULT_MAX_BODY_BYTES = 16 * 1024**2
_READY_TIMEOUT_S = 60.0


class EndpointService:
    """Endpoints of one `Workbench`: `wb.endpoints.export`, `deploy`, `list`, `get`, `infer`, `bench`, `stop`."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # servers this process started (reaped on stop)

    @property
    def folder(self) -> Path:
        return Path(self.wb.home) / "endpoints"

    # -- export -------------------------------------------------------------------------------
    def export(self, model: Any, example: Any, path: str | Path | None = None, *, name: str | None = None,
               **kwargs: Any) -> ExportResult:
        """Export a `torch.nn.Module` or a JAX function to ONNX and check parity on seeded inputs.

        `path` defaults to `<data dir>/endpoints/exports/<name>.onnx`; keyword arguments go to
        `workbench.endpoints.export.export` (`input_names`, `output_names`, `seed`, `rtol`, `atol`).
        """
        if path is None:
            stem = name or getattr(model, "__name__", None) or type(model).__name__.lower()
            path = self.folder / "exports" / f"{stem}.onnx"
        return export(model, example, path, **kwargs)

    def export_from(self, factory: str, shape: Sequence[int], *, weights: str | Path | None = None,
                    path: str | Path | None = None) -> ExportResult:
        """Export what `factory` builds (`PATH.py:FUNCTION` or `module:FUNCTION`, returning a
        `torch.nn.Module`), with `weights` loaded (a state-dict file, or `JOB_ID:ARTIFACT` of one
        of your jobs), called on zeros of `shape` (batch first). What `workbench endpoints export`
        runs: a job's trained weights become an ONNX file."""
        import torch

        module = _load_factory(factory)()
        if not isinstance(module, torch.nn.Module):
            raise InvalidRequest(f"{factory} returned a {type(module).__name__}, not a torch.nn.Module")
        if weights is not None:
            state = torch.load(self._weights_file(str(weights)), map_location="cpu", weights_only=True)
            try:
                module.load_state_dict(state)
            except (RuntimeError, TypeError) as exc:
                raise InvalidRequest(f"the weights {weights} do not fit what {factory} builds: {str(exc).splitlines()[0]}") from None
        if not shape or any(int(d) < 1 for d in shape):
            raise InvalidRequest(f"shape {list(shape)} must be sizes of at least 1, batch first, e.g. 1,1,8,8")
        name = factory.rsplit(":", 1)[-1]
        return self.export(module.eval(), torch.zeros(*[int(d) for d in shape]), path, name=name)

    def _weights_file(self, weights: str) -> Path:
        job_id, _, artifact = weights.partition(":")
        if job_id.startswith("job-") and artifact:
            job = self.wb.jobs.get(job_id)
            if job.owner != self.wb.user and not self.wb.is_admin():
                raise Forbidden(f"job {job_id} belongs to {job.owner}, not {self.wb.user}")
            found = next((p for p in job.artifacts() if p.name == artifact), None)
            if found is None:
                raise NotFound(f"job {job_id} has no artifact {artifact!r}; it has {[p.name for p in job.artifacts()]}")
            return found
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InvalidRequest(f"weights {weights} is neither a file nor JOB_ID:ARTIFACT")
        return path

    # -- deploy -------------------------------------------------------------------------------
    def deploy(
        self,
        model: Any,
        slice: Any = "cpu",
        *,
        name: str | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        token: bool | str = True,
        example: Any = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        timeout_s: float = _READY_TIMEOUT_S,
    ) -> Endpoint:
        """Serve `model` on `slice` and return the endpoint once it answers `/v2/health/ready`.

        `model`: an `.onnx` path, or a torch module / JAX function with `example` (exported
        first; the parity check must pass). `slice`: a lease you hold (`Lease` or its id) or a spec such as `"cpu"` (a lease
        is requested for the endpoint and released when it stops). `token=True` makes a bearer
        token, a string is used as the token, `False` serves without one.
        """
        if max_batch_size < 1:
            raise InvalidRequest(f"max_batch_size={max_batch_size} must be at least 1")
        if max_wait_ms < 0:
            raise InvalidRequest(f"max_wait_ms={max_wait_ms} must be 0 or more")
        if max_body_bytes < 1024:
            raise InvalidRequest(f"max_body_bytes={max_body_bytes} must be at least 1024")
        endpoint_id = new_id("ep")
        folder = self.folder / endpoint_id
        model_path = self._model_file(model, example, folder, name)
        signature = read_signature(model_path)  # not ONNX: InvalidRequest before anything is started
        name = name or model_path.stem
        _check_name(name)
        lease, owns_lease = self._lease(slice, timeout_s)
        bearer = (secrets.token_urlsafe(24) if token is True else None) if not isinstance(token, str) else token
        providers = _providers(lease)
        config = {
            "endpoint_id": endpoint_id, "lease_id": lease.id, "name": name, "model_path": str(model_path),
            "max_batch_size": int(max_batch_size), "max_wait_ms": float(max_wait_ms),
            "max_body_bytes": int(max_body_bytes), "token": bearer, "providers": providers,
            "ready_path": str(folder / "ready.json"), "host": "127.0.0.1", "owns_lease": owns_lease,
            "threads": default_threads({str(k): str(v) for k, v in (lease.env or {}).items()}),
        }
        row = EndpointRow(
            id=endpoint_id, name=name, owner=self.wb.user, lease_id=lease.id, state="starting",
            model_path=str(model_path), node=lease.node or socket.gethostname(), token=bearer,
            config={k: config[k] for k in ("max_batch_size", "max_wait_ms", "max_body_bytes", "owns_lease", "threads", "providers")},
            signature=signature.as_json(), bench={}, log_path=str(folder / "server.log"),
        )
        with self.wb.store.session() as s:
            s.add(row)
        try:
            return self._start(row, config, lease, folder, timeout_s)
        except BaseException as exc:
            self._mark(endpoint_id, "failed", f"did not start: {exc}")
            if owns_lease:
                with contextlib.suppress(WorkbenchError):
                    self.wb.slices.release(lease.id)
            raise

    def _model_file(self, model: Any, example: Any, folder: Path, name: str | None) -> Path:
        if isinstance(model, (str, Path)):
            text = str(model)
            if text.startswith("models:/"):
                # Not yet: MLflow is not installed beside the workbench here (see the closing note).
                raise InvalidRequest(
                    f"deploying {text} from the MLflow registry is not supported yet; fetch the model with "
                    f"`mlflow artifacts download -u {text}` and deploy its .onnx file"
                )
            path = Path(text).expanduser().resolve()
            if not path.is_file():
                raise InvalidRequest(f"model file {text} does not exist; give an .onnx file, or a module with example=")
            return path
        if example is None:
            raise InvalidRequest(f"deploying a {type(model).__name__} needs example= (an input it is called on) to export it to ONNX first")
        result = export(model, example, folder / f"{name or 'model'}.onnx")
        if not result.ok:
            raise InvalidRequest(f"the exported ONNX model does not answer what the model answers: {result!r}")
        return result.path

    def _lease(self, slice: Any, timeout_s: float) -> tuple[Any, bool]:
        lease_id = getattr(slice, "id", None) or (slice if isinstance(slice, str) and slice.startswith("lease-") else None)
        if lease_id is None:
            return self.wb.slices.request(slice, timeout_s=timeout_s), True
        lease = self.wb.slices.get(lease_id)
        if lease.owner != self.wb.user and not self.wb.is_admin():
            raise Forbidden(f"slice {lease.id} belongs to {lease.owner}, not {self.wb.user}; deploy on a slice of yours")
        if not lease.live:
            raise Conflict(f"slice {lease.id} is {lease.state}, not active; request a new one with wb.slices.request(...)")
        return lease, False

    def _start(self, row: EndpointRow, config: dict[str, Any], lease: Any, folder: Path, timeout_s: float) -> Endpoint:
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "config.json"
        config_path.touch(mode=0o600)  # it holds the token
        config_path.write_bytes(orjson.dumps(config))
        ready_path = Path(config["ready_path"])
        ready_path.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (lease.env or {}).items()})
        env.update(_settings_env(self.wb.settings))
        with open(row.log_path or folder / "server.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.endpoints.server", str(config_path)], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI or kernel that deployed it, until stopped
            )
        self._procs[row.id] = proc
        deadline = time.monotonic() + timeout_s
        while not ready_path.exists():
            if proc.poll() is not None:
                raise BackendUnavailable(f"endpoint server exited with code {proc.returncode}: {_tail(row.log_path)}")
            if time.monotonic() > deadline:
                _end_process(proc.pid, proc)
                raise BackendUnavailable(f"endpoint server not ready within {timeout_s:g} s: {_tail(row.log_path)}")
            time.sleep(0.05)
        ready = orjson.loads(ready_path.read_bytes())
        url = f"http://127.0.0.1:{ready['port']}"
        with self.wb.store.session() as s:
            stored = s.get(EndpointRow, row.id)
            assert stored is not None
            if stored.state == "starting":  # not stopped meanwhile (its lease released)
                stored.state, stored.url, stored.pid, stored.ready_at = "ready", url, proc.pid, utcnow()
                stored.config = {**stored.config, "providers_used": ready.get("providers", [])}
            return Endpoint.from_row(stored, self)

    # -- read ---------------------------------------------------------------------------------
    def get(self, endpoint: str | Endpoint) -> Endpoint:
        """An endpoint by id, or by name among yours (the newest of that name)."""
        key = getattr(endpoint, "id", endpoint)
        with self.wb.store.session() as s:
            row = s.get(EndpointRow, key)
            if row is None:
                row = s.scalars(select(EndpointRow).where(EndpointRow.name == key, EndpointRow.owner == self.wb.user)
                                .order_by(EndpointRow.created_at.desc()).limit(1)).first()
            if row is None:
                raise NotFound(f"no endpoint {key!r}; see wb.endpoints.list()")
            self._check_owner(row, "read")
            return Endpoint.from_row(row, self)

    def list(self, all_users: bool = False, include_stopped: bool = False) -> EndpointList:
        """Your endpoints that are starting or ready (`include_stopped`: all; `all_users`: everyone's, tokens hidden)."""
        q = select(EndpointRow).order_by(EndpointRow.created_at)
        if not all_users:
            q = q.where(EndpointRow.owner == self.wb.user)
        if not include_stopped:
            q = q.where(EndpointRow.state.in_(LIVE_STATES))
        with self.wb.store.session() as s:
            endpoints = [Endpoint.from_row(r, self) for r in s.scalars(q).all()]
        for e in endpoints:
            if e.owner != self.wb.user:
                e.token = None
        return EndpointList(endpoints)

    def _check_owner(self, row: EndpointRow, verb: str) -> None:
        if row.owner != self.wb.user and not self.wb.is_admin():
            raise Forbidden(f"{self.wb.user} cannot {verb} endpoint {row.id}: it belongs to {row.owner}")

    # -- query --------------------------------------------------------------------------------
    def infer(self, endpoint: str | Endpoint, *inputs: Any, **named: Any) -> dict[str, np.ndarray]:
        """POST the arrays (in the model's input order, or by input name) to the endpoint; the
        outputs by name. A stopped endpoint is `Conflict`; a refused request `InvalidRequest`
        with the server's message."""
        import httpx

        ep = self._live(endpoint)
        body = infer_body(Signature.from_json({"inputs": ep.inputs, "outputs": ep.outputs}), inputs, named)
        try:
            response = httpx.post(ep.infer_url, content=body, headers=auth_headers(ep.token), timeout=30)
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"endpoint {ep.id} at {ep.url} does not answer: {exc}") from None
        if response.status_code != 200:
            raise InvalidRequest(f"endpoint {ep.name} refused the request ({response.status_code}): "
                                 f"{_error_text(response)}")
        return {o["name"]: np.asarray(o["data"], dtype=_numpy_dtype(o["datatype"])).reshape(o["shape"])
                for o in response.json()["outputs"]}

    def infer_raw(self, endpoint: str | Endpoint, body: bytes) -> tuple[int, bytes]:
        """Forward a KServe v2 JSON request as it is (a face acting for the owner: the Jupyter
        server) with the endpoint's token; the server's status and body, its 4xx included."""
        import httpx

        ep = self._live(endpoint)
        try:
            response = httpx.post(ep.infer_url, content=body, headers=auth_headers(ep.token), timeout=30)
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"endpoint {ep.id} at {ep.url} does not answer: {exc}") from None
        return response.status_code, response.content

    def stats(self, endpoint: str | Endpoint) -> dict[str, float]:
        """What the server counts (its `/metrics`): requests served, requests/s over the last
        10 s, model runs and mean rows per run. Empty for an endpoint that is not live."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        ep = self.get(endpoint)
        if not ep.live or not ep.url:
            return {}
        try:
            text = httpx.get(f"{ep.url}/metrics", headers=auth_headers(ep.token), timeout=2).text
        except httpx.HTTPError:
            return {}
        samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
                   if not s.labels.get("code") or s.labels["code"] == "200"}
        runs = samples.get("workbench_endpoint_batch_size_count", 0.0)
        return {
            "requests": samples.get("workbench_endpoint_requests_total", 0.0),
            "rps": samples.get("workbench_endpoint_requests_per_second", 0.0),
            "runs": runs,
            "mean_batch_rows": samples.get("workbench_endpoint_batch_size_sum", 0.0) / runs if runs else 0.0,
        }

    def _live(self, endpoint: str | Endpoint) -> Endpoint:
        ep = self.get(endpoint)
        if not ep.live or not ep.url:
            raise Conflict(f"endpoint {ep.id} ({ep.name}) is {ep.state}" + (f": {ep.reason}" if ep.reason else "")
                           + "; deploy it again with wb.endpoints.deploy(...)")
        return ep

    def bench(self, endpoint: str | Endpoint, concurrency: Sequence[int] = (1, 8, 32), seconds: float = 10.0, *,
              warmup_s: float = 1.0, model: Any = None) -> Any:
        """Closed-loop load on the endpoint (see `workbench.endpoints.bench`); recorded on the endpoint."""
        from workbench.endpoints.bench import run_bench

        ep = self._live(endpoint)
        result = run_bench(ep, concurrency=concurrency, seconds=seconds, warmup_s=warmup_s, model=model)
        with self.wb.store.session() as s:
            row = s.get(EndpointRow, ep.id)
            if row is not None:
                row.bench = result.as_json()
        return result

    # -- stop ---------------------------------------------------------------------------------
    def stop(self, endpoint: str | Endpoint, *, reason: str | None = None) -> Endpoint:
        """Stop the server (idempotent) and release the lease if the endpoint requested it."""
        ep = self.get(endpoint)
        if ep.live:
            self._mark(ep.id, "stopped", reason or f"stopped by {self.wb.user}")
            self._end(ep)
        return self.get(ep.id)

    def stop_for_lease(self, lease_id: str, reason: str) -> int:
        """Stop the endpoints serving from `lease_id` (its lease ended). Returns how many."""
        with self.wb.store.engine.begin() as connection:
            marked = mark_stopped(connection, lease_id, reason, utcnow())
        self.end_marked(marked)
        return len(marked)

    def end_marked(self, marked: Sequence[Marked]) -> None:
        """End the processes of endpoints already marked stopped (by `mark_stopped`)."""
        for m in marked:
            self._end_process_of(m.id, m.pid, m.node, m.lease_id, bool((m.config or {}).get("owns_lease")))

    def reap(self) -> int:
        """Stop every endpoint whose lease is no longer live (the sweep calls this)."""
        from workbench.slices.lease import LIVE_STATES as LEASE_LIVE
        from workbench.store.models.slices import LeaseRow

        with self.wb.store.session() as s:
            ended = s.execute(
                select(EndpointRow.lease_id, LeaseRow.state).join(LeaseRow, LeaseRow.id == EndpointRow.lease_id)
                .where(EndpointRow.state.in_(LIVE_STATES), LeaseRow.state.not_in(LEASE_LIVE))
            ).all()
        return sum(self.stop_for_lease(lease_id, f"its slice {lease_id} was {state}") for lease_id, state in set(ended))

    def _mark(self, endpoint_id: str, state: str, reason: str) -> None:
        with self.wb.store.session() as s:
            row = s.get(EndpointRow, endpoint_id)
            if row is not None and row.state in LIVE_STATES:
                row.state, row.reason, row.stopped_at = state, reason, utcnow()

    def _end(self, ep: Endpoint) -> None:
        self._end_process_of(ep.id, ep.pid, ep.node, ep.lease_id, bool(ep.config.get("owns_lease")))

    def _end_process_of(self, endpoint_id: str, pid: int | None, node: str | None, lease_id: str, owns_lease: bool) -> None:
        proc = self._procs.pop(endpoint_id, None)
        if pid is not None and (node in (None, socket.gethostname())):
            _end_process(pid, proc)
        elif proc is not None:
            _end_process(proc.pid, proc)
        if owns_lease:
            with contextlib.suppress(WorkbenchError):
                self.wb.slices.release(lease_id)

    def close(self) -> None:
        """Endpoints outlive the `Workbench` that deployed them; only reap finished children here."""
        for proc in self._procs.values():
            proc.poll()


def end_for_reason(wb: Any, endpoint_id: str, lease_id: str) -> tuple[str | None, float]:
    """Why the endpoint must end now (its row stopped, its lease ended), or None; and the lease's
    TTL in seconds. One statement: the server's watchdog runs it every few seconds."""
    from workbench.store.models.slices import LeaseRow

    with wb.store.engine.connect() as connection:
        found = connection.execute(
            select(EndpointRow.state, LeaseRow.state, LeaseRow.ttl_s)
            .select_from(EndpointRow).outerjoin(LeaseRow, LeaseRow.id == EndpointRow.lease_id)
            .where(EndpointRow.id == endpoint_id)
        ).first()
    if found is None or found[0] not in LIVE_STATES:
        return f"endpoint {endpoint_id} is {found[0] if found else 'gone'}", 0.0
    if found[1] not in ("active", "idle"):
        return f"its slice {lease_id} was {found[1] or 'deleted'}", 0.0
    return None, float(found[2] or 0.0)


def record_end(wb: Any, endpoint_id: str, reason: str) -> None:
    """Mark the endpoint stopped with `reason` unless it already is (the watchdog, on its way out)."""
    with wb.store.session() as s:
        row = s.get(EndpointRow, endpoint_id)
        if row is not None and row.state in LIVE_STATES:
            row.state, row.reason, row.stopped_at = "stopped", reason, utcnow()


# -- helpers ----------------------------------------------------------------------------------
def _load_factory(factory: str) -> Any:
    """`examples/torch_cnn_digits.py:build_model` or `package.module:build_model` -> the function."""
    import importlib
    import importlib.util

    where, sep, attr = factory.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise InvalidRequest(f"{factory!r} is not PATH.py:FUNCTION or module:FUNCTION, e.g. examples/torch_cnn_digits.py:build_model")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"_workbench_factory_{Path(where).stem}", where)
            if spec is None or spec.loader is None or not Path(where).is_file():
                raise InvalidRequest(f"{where} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise InvalidRequest(f"cannot import {where}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidRequest(f"{where} has no function {attr!r}")
    return fn


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or len(name) > 200:
        raise InvalidRequest(f"endpoint name {name!r} must be 1-200 letters, digits, '-', '_' or '.' (it is part of the URL)")


def _providers(lease: Any) -> list[Any]:
    """ONNX Runtime's CUDA provider with `gpu_mem_limit` from the lease where there is a GPU, else CPU.

    The CUDA arena grows by the size asked (`kSameAsRequested`), so it stays under the limit
    instead of doubling past it (onnxruntime #9509)."""
    if lease.kind == "cpu" or not (lease.env or {}).get("CUDA_VISIBLE_DEVICES"):
        return ["CPUExecutionProvider"]
    try:
        import onnxruntime as ort
    except ImportError:
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ["CPUExecutionProvider"]
    options: dict[str, Any] = {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"}
    if lease.memory_bytes:
        options["gpu_mem_limit"] = int(lease.memory_bytes)
    return [["CUDAExecutionProvider", options], "CPUExecutionProvider"]


def _settings_env(settings: Any) -> dict[str, str]:
    """What the server process needs to open the same store as the deployer, acting for the same user."""
    env = {"WORKBENCH_HOME": str(settings.home), "WORKBENCH_DATABASE_URL": settings.database, "WORKBENCH_USER": settings.user}
    if settings.fleet:
        env["WORKBENCH_FLEET"] = str(settings.fleet)
    return env


def _end_process(pid: int, proc: subprocess.Popen[bytes] | None, timeout_s: float = 5.0) -> None:
    """SIGTERM the server, SIGKILL it after `timeout_s`; a pid that is not a workbench endpoint server is left alone."""
    import psutil

    from workbench.jobs.backend import terminate_then_kill

    try:
        target = psutil.Process(pid)
        if "workbench.endpoints.server" not in " ".join(target.cmdline()):
            return
        terminate_then_kill(target, timeout_s)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _tail(path: str | None, lines: int = 8) -> str:
    if not path:
        return ""
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _numpy_dtype(datatype: str) -> Any:
    from workbench.endpoints.signature import V2_TO_NUMPY

    return V2_TO_NUMPY[datatype]


def _error_text(response: Any) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:300]


def auth_headers(token: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def infer_body(signature: Signature, inputs: Sequence[Any], named: dict[str, Any]) -> bytes:
    """A KServe v2 JSON request for these arrays (positional in the model's input order, or by name)."""
    if inputs and named:
        raise InvalidRequest("give the inputs either in order or by name, not both")
    specs = signature.inputs
    if inputs:
        if len(inputs) != len(specs):
            raise InvalidRequest(f"{len(inputs)} inputs given; the model takes {len(specs)}: {[t.name for t in specs]}")
        named = {t.name: x for t, x in zip(specs, inputs, strict=True)}
    tensors = []
    for spec in specs:
        if spec.name not in named:
            raise InvalidRequest(f"missing input {spec.name!r}; the model takes {[t.name for t in specs]}")
        array = np.asarray(named[spec.name], dtype=spec.dtype)
        tensors.append({"name": spec.name, "shape": list(array.shape), "datatype": NUMPY_TO_V2[array.dtype], "data": array.ravel()})
    return orjson.dumps({"inputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
