"""Where jobs run: a Dask cluster, and one worker process per slice.

By default an embedded `LocalCluster` with no workers of its own (a scheduler in this process),
started on the first job; with `WORKBENCH_DASK_SCHEDULER` an existing scheduler instead. For
each slice a job runs on, the backend starts a `dask worker` process (no nanny, one thread)
whose environment is the slice's (`CUDA_VISIBLE_DEVICES`, the memory-fraction variables,
`OMP_NUM_THREADS`, ...), set by the operating system before the interpreter starts, and which
offers the Dask resource `slice-<lease id>`. Jobs are submitted with that resource, so Dask
places them on their slice's worker and nowhere else: a process never runs another slice's job.
The worker ends when the slice is released, or when the process that started it ends.

Recipe for a shared cluster (tested: `tests/jobs/test_jobs_faults.py` runs jobs on a separate
`dask scheduler` process and reports them lost when it goes away):

    # once, on a login or head node (or `SLURMCluster(...).scheduler_address` with dask-jobqueue,
    # `GatewayCluster().scheduler_address` with dask-gateway):
    dask scheduler --port 8786 --scheduler-file ~/dask-scheduler.json
    # in each user's environment (notebook server, CLI):
    export WORKBENCH_DASK_SCHEDULER=tcp://head-node:8786

The workbench then starts each slice's worker on the machine it runs on, connected to that
scheduler. A worker that already offers `slice-<lease id>` is used instead of starting one, so a
slice on another node can be served by a worker started there with the lease's environment
(`wb.slices.get(LEASE).env`): `env CUDA_VISIBLE_DEVICES=... OMP_NUM_THREADS=... dask worker
tcp://head-node:8786 --nthreads 1 --resources slice-LEASE=1` (that path is not covered by the tests).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import BackendUnavailable
from workbench.jobs.runner import EVENT_TOPIC

if TYPE_CHECKING:
    import psutil


def slice_resource(lease_id: str) -> str:
    return f"slice-{lease_id}"


@dataclass
class SliceWorker:
    """A worker process this backend started for one slice."""

    lease_id: str
    proc: subprocess.Popen[bytes] | None  # None: a worker someone else started (external cluster)
    log_path: Path | None
    started: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class DaskBackend:
    """The Dask client, the embedded cluster (if any) and the slice workers of this process."""

    def __init__(self, scheduler_address: str | None, workers_dir: Path, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._external = scheduler_address
        self._workers_dir = workers_dir
        self._on_event = on_event
        self._cluster: Any = None
        self._client: Any = None
        self._workers: dict[str, SliceWorker] = {}
        self._lock = threading.RLock()
        self.closed = False

    # -- the cluster --------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._start()
            return self._client

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    @property
    def external(self) -> bool:
        return self._external is not None

    def _start(self) -> Any:
        if self.closed:
            raise BackendUnavailable("the job service is closed; create a new Workbench to run jobs")
        import dask
        from distributed import Client, LocalCluster

        # A task whose worker dies is not re-run by Dask: the job's retry policy decides.
        dask.config.set({"distributed.scheduler.allowed-failures": 0})
        if self._external:
            try:
                client = Client(self._external, timeout=10, set_as_default=False)  # type: ignore[no-untyped-call]  # distributed ships no annotations
            except (OSError, TimeoutError) as exc:
                raise BackendUnavailable(
                    f"cannot reach the Dask scheduler at {self._external} (WORKBENCH_DASK_SCHEDULER): {exc}"
                ) from None
        else:
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]  # distributed ships no annotations
                n_workers=0, processes=True, scheduler_port=0, dashboard_address=None,
                silence_logs=logging.ERROR, host="127.0.0.1",
                # No dashboard, and the scheduler's small HTTP server on a free port, not 8787.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            )
            client = Client(self._cluster, set_as_default=False)  # type: ignore[no-untyped-call]  # distributed ships no annotations
        client.subscribe_topic(EVENT_TOPIC, self._handle_event)  # type: ignore[no-untyped-call]  # distributed ships no annotations
        return client

    def _handle_event(self, event: Any) -> None:
        _, message = event
        if isinstance(message, dict):
            self._on_event(message)

    def connected(self) -> bool:
        """Whether the scheduler is reachable (False once it has gone away)."""
        client = self._client
        return client is not None and str(getattr(client, "status", "")) == "running"

    # -- slice workers ------------------------------------------------------------------------
    def worker(self, lease_id: str) -> SliceWorker | None:
        return self._workers.get(lease_id)

    def ensure_worker(self, lease: Any) -> SliceWorker:
        """The worker of this slice, started (with the slice's environment) if it is not running."""
        with self._lock:
            client = self.client
            current = self._workers.get(lease.id)
            if current is not None and current.alive:
                return current
            if self._external and self._has_resource_worker(lease.id):
                current = SliceWorker(lease.id, None, None)
            else:
                current = self._spawn(lease, client)
            self._workers[lease.id] = current
            return current

    def _has_resource_worker(self, lease_id: str) -> bool:
        name = slice_resource(lease_id)
        info = self.client.scheduler_info(n_workers=-1)
        return any(name in (w.get("resources") or {}) for w in info.get("workers", {}).values())

    def _spawn(self, lease: Any, client: Any) -> SliceWorker:
        self._workers_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._workers_dir / f"slice-{lease.id}.log"
        resource = slice_resource(lease.id)
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (lease.env or {}).items()})
        env.update({
            "WORKBENCH_JOB_DRIVER_PID": str(os.getpid()),
            "DASK_LOGGING__DISTRIBUTED": "warning",
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
            "PYTHONFAULTHANDLER": "1",
        })
        cmd = [
            sys.executable, "-m", "distributed.cli.dask_worker", str(client.scheduler.address),
            "--no-nanny", "--nthreads", "1", "--name", resource, "--resources", f"{resource}=1",
            "--memory-limit", "0", "--no-dashboard", "--death-timeout", "60",
            "--local-directory", str(self._workers_dir / resource),
            "--preload", "workbench.jobs.worker_setup",
        ]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return SliceWorker(lease.id, proc, log_path)

    def stop_worker(self, lease_id: str, *, timeout_s: float = 5.0) -> None:
        """End this slice's worker (the slice was released): SIGTERM, then SIGKILL."""
        with self._lock:
            current = self._workers.pop(lease_id, None)
        if current is None or current.proc is None:
            return
        terminate_then_kill(current.proc, timeout_s)

    def kill_worker(self, lease_id: str, address: str | None = None) -> None:
        """End the worker now (a job ignored its cancel); the next job of the slice starts a new one."""
        current = self._workers.get(lease_id)
        if current is not None and current.proc is not None:
            if current.proc.poll() is None:
                current.proc.kill()
            return
        if address and self._client is not None:
            from workbench.jobs.runner import hard_exit

            try:
                self._client.run(hard_exit, workers=[address], wait=False)
            except Exception:  # noqa: BLE001 - the worker may be gone already
                pass

    def request_cancel(self, address: str, job_id: str) -> None:
        from workbench.jobs.runner import request_cancel

        self.client.run(request_cancel, job_id, workers=[address], wait=False)

    def submit(self, fn: Callable[..., Any], spec: dict[str, Any], *, lease_id: str, key: str, priority: int) -> Any:
        return self.client.submit(
            fn, spec, key=key, pure=False, resources={slice_resource(lease_id): 1}, priority=priority, retries=0,
        )

    def workers(self) -> dict[str, SliceWorker]:
        return dict(self._workers)

    # -- shutdown -----------------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
        for current in workers:
            if current.proc is not None and current.proc.poll() is None:
                current.proc.terminate()
        for current in workers:
            if current.proc is not None:
                terminate_then_kill(current.proc, 5.0)
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception:  # noqa: BLE001 - closing a client whose scheduler is gone
                pass
        if cluster is not None:
            try:
                cluster.close(timeout=5)
            except Exception:  # noqa: BLE001
                pass


def terminate_then_kill(proc: subprocess.Popen[bytes] | psutil.Process, timeout_s: float, kill_wait_s: float = 5.0) -> None:
    """SIGTERM a process, SIGKILL it if it is still there after `timeout_s`: a slice worker, an endpoint server.

    Takes a `Popen` (a child of this process) or a `psutil.Process` (one found by pid); a process
    that is gone raises `psutil.NoSuchProcess` only for the latter, as `psutil` does.
    """
    import psutil

    running = proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_running()
    if running:
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        proc.kill()
        proc.wait(kill_wait_s)
