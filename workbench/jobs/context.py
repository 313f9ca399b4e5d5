"""Inside a job: `workbench.log(step=..., **metrics)` and `workbench.artifacts_dir()`.

The worker-side runner installs a `JobContext` for the job it runs; code called from the job
reaches it through these module functions. A job started in another process of the slice (a
papermill kernel, a subprocess) finds its job through `WORKBENCH_JOB_ID` and
`WORKBENCH_JOB_FOLDER` in its environment. Outside any job, `log` does nothing and
`artifacts_dir()` is `./artifacts`, so the same training script runs by hand.

`log` is on the training loop's hot path: it converts the values, appends one row to a list and
returns; a background thread appends the rows to `metrics.jsonl` in the job folder every half
second (the driver reads that file live) and the runner turns it into `metrics.nc` at the end.
Every quarter of a second a row also gets the automatic figures: `steps_per_s` (throughput since
the previous sample), `host_memory_bytes` (resident memory of the process) and, when the job has
put data on a GPU, `device_memory_bytes`.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

METRICS_JSONL = "metrics.jsonl"
METRICS_NC = "metrics.nc"
ARTIFACTS = "artifacts"
_FLUSH_EVERY_S = 0.5
_SAMPLE_EVERY_S = 0.25


class JobCancelled(BaseException):
    """Raised inside a job that was asked to stop.

    A `BaseException`, like `KeyboardInterrupt`, so that a job's own `except Exception` does not
    swallow the request.
    """


class JobContext:
    """The running job as seen from inside: where its files go, whether it must stop."""

    def __init__(self, job_id: str, folder: str | Path, framework: str | None = None) -> None:
        self.job_id = job_id
        self.folder = Path(folder)
        self.framework = framework
        self.cancel_event = threading.Event()
        self._cancelled = False
        self._rows: collections.deque[dict[str, Any]] = collections.deque()  # appends and pops are atomic
        self._t0 = time.perf_counter()
        self._next_step = 0
        self._sample_t = self._t0
        self._sample_step: float | None = None
        self._file_lock = threading.Lock()
        # Opened at the first flush with rows: a job that logs nothing creates no file.
        self._file: Any = None
        self._closed = False
        self._warned_types: set[str] = set()
        _start_flusher()

    # -- the hot path -------------------------------------------------------------------------
    def log(self, step: int | None = None, **metrics: Any) -> None:
        self.record(step, metrics)

    def record(self, step: int | None, row: dict[str, Any]) -> None:
        """`log` with the metrics as a dict this context may keep (the hot path: no copies)."""
        if self.cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")
        now = time.perf_counter()
        step = self._next_step if step is None else int(step)
        self._next_step = step + 1
        bad = None
        for key, value in row.items():
            if type(value) is not float:
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    bad = (bad or []) + [key]
                    self._warn_type(key, value)
        if bad:
            for key in bad:
                del row[key]
        row["step"] = step
        row["time_s"] = now - self._t0
        if now - self._sample_t >= _SAMPLE_EVERY_S:
            self._sample(row, now, step)
        self._rows.append(row)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def request_cancel(self) -> None:
        """Ask the job to stop: its next `log` raises `JobCancelled`."""
        self._cancelled = True
        self.cancel_event.set()

    def _warn_type(self, key: str, value: Any) -> None:
        if key not in self._warned_types:
            self._warned_types.add(key)
            warnings.warn(
                f"workbench.log: {key}={value!r} is not a number; metrics are numbers (float, int, 0-d array)",
                stacklevel=3,
            )

    def _sample(self, row: dict[str, Any], now: float, step: int) -> None:
        if self._sample_step is not None and now > self._sample_t:
            row["steps_per_s"] = (step - self._sample_step) / (now - self._sample_t)
        self._sample_t, self._sample_step = now, step
        row["host_memory_bytes"] = float(_rss_bytes())
        device = _device_memory_bytes()
        if device is not None:
            row["device_memory_bytes"] = float(device)

    # -- the background side ------------------------------------------------------------------
    def flush(self) -> None:
        rows = []
        pop = self._rows.popleft
        try:
            while True:
                rows.append(pop())
        except IndexError:
            pass
        if not rows:
            return
        import orjson

        data = orjson.dumps(rows) + b"\n"  # one line per flush: a JSON array of rows
        with self._file_lock:
            if self._closed:
                return
            if self._file is None:
                self._file = open(self.folder / METRICS_JSONL, "ab")  # noqa: SIM115 (closed in close())
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        with self._file_lock:
            if self._closed:
                return
        self.flush()
        with self._file_lock:
            self._closed = True
            if self._file is not None:
                self._file.close()

    def artifacts_dir(self) -> Path:
        path = self.folder / ARTIFACTS
        path.mkdir(parents=True, exist_ok=True)
        return path


_current: JobContext | None = None
_warned_outside = False
_flusher: threading.Thread | None = None


def _flush_loop() -> None:
    while True:
        time.sleep(_FLUSH_EVERY_S)
        ctx = _current
        if ctx is not None:
            try:
                ctx.flush()
            except Exception:  # noqa: BLE001 - a full disk must not kill the thread; the job sees it at close
                pass


def _start_flusher() -> None:
    """One background thread per process appends the running job's rows every half second."""
    global _flusher
    if _flusher is None:
        _flusher = threading.Thread(target=_flush_loop, name="workbench-metrics", daemon=True)
        _flusher.start()


def current() -> JobContext | None:
    """The job this process runs now, or None. Attaches to `WORKBENCH_JOB_*` when set."""
    global _current
    if _current is None and os.environ.get("WORKBENCH_JOB_FOLDER") and os.environ.get("WORKBENCH_JOB_ID"):
        _current = JobContext(os.environ["WORKBENCH_JOB_ID"], os.environ["WORKBENCH_JOB_FOLDER"])
        import atexit

        atexit.register(_current.close)  # this process (a kernel, a subprocess) ends before the job
    return _current


def activate(ctx: JobContext | None) -> None:
    """Install (or, with None, remove) the context of the job this process runs."""
    global _current
    _current = ctx


def log(step: int | None = None, **metrics: Any) -> None:
    """Record metrics of one step: `workbench.log(step=i, loss=loss, accuracy=acc)`.

    The driver sees them live (`job.metrics()`); at the end they are an xarray Dataset with
    dimension `step` in the job's folder. `step` defaults to the previous step + 1. Raises
    `JobCancelled` when the job has been asked to stop, so a training loop that logs stops
    cleanly at a step boundary. Outside a job it does nothing.
    """
    global _warned_outside
    ctx = _current if _current is not None else current()
    if ctx is not None:
        ctx.record(step, metrics)
    elif not _warned_outside:
        _warned_outside = True
        print("workbench.log: not inside a workbench job; metrics are not recorded", file=sys.stderr)


def artifacts_dir() -> Path:
    """The folder whose files are this job's artifacts (`job.artifacts()` lists them).

    Outside a job: `./artifacts`.
    """
    ctx = current()
    if ctx is None:
        path = Path.cwd() / ARTIFACTS
        path.mkdir(parents=True, exist_ok=True)
        return path
    return ctx.artifacts_dir()


def cancelled() -> bool:
    """Whether the running job has been asked to stop (for loops that do not call `log`)."""
    ctx = current()
    return bool(ctx and ctx.cancelled)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def _device_memory_bytes() -> int | None:
    """Bytes allocated on the job's first GPU by torch or jax, if the job has initialized one."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                return int(torch.cuda.memory_allocated())
        except Exception:
            pass
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            backends = sys.modules.get("jax._src.xla_bridge")
            if backends is not None and getattr(backends, "_backends", None):
                for device in jax.local_devices():
                    if device.platform == "gpu":
                        stats = device.memory_stats() or {}
                        return int(stats.get("bytes_in_use", 0))
                    break
        except Exception:
            pass
    return None
