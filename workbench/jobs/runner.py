"""The worker side: run one attempt of a job inside the slice's Dask worker process.

`run_job(spec)` is the Dask task. It installs the job's context (metrics, artifacts, the cancel
flag), sends the driver a `running` event through Dask's worker event log, points the process's
stdout and stderr (file descriptors 1 and 2, so C extensions and child processes too) at the
job's log, runs the callable, script or notebook, and returns the outcome as a dict. Exceptions
of the job are part of the outcome (state `failed`, the traceback in the log and in `error`),
not Dask errors: a Dask error means the worker itself was lost.

The slice worker runs one task at a time (one thread), so swapping the process-wide file
descriptors, `sys.argv` and the working directory for the length of a job is safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.jobs import context as _context
from workbench.jobs.context import JobCancelled, JobContext
from workbench.output import output_to

EVENT_TOPIC = "workbench-jobs"
RESULT = "result.pkl"

_job_thread: int | None = None
_in_job_code = False
_memory_fraction_applied = False
_meter: Any = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


_RUNNING_EVENT_DELAY_S = 0.02
_running_key: str | None = None


def _announce_running(message: dict[str, Any]) -> str | None:
    """Tell the driver the attempt runs (through the scheduler's event log); returns this worker's address.

    Sent from the worker's event loop after a short delay and only if the attempt is still going:
    a job that ends within it is reported by its outcome alone, one message instead of two.
    """
    global _running_key
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    address = str(worker.address)
    message["worker"] = address
    key = f"{message['job_id']}-{message['attempt']}"
    _running_key = key

    def send() -> None:
        if _running_key == key:
            worker.log_event(EVENT_TOPIC, message)

    loop = worker.loop
    loop.add_callback(lambda: loop.call_later(_RUNNING_EVENT_DELAY_S, send))
    return address


async def request_cancel(job_id: str) -> bool:
    """Run on the worker's event loop (`client.run`, a coroutine so the driver need not wait): ask the job to stop at its next `log` or bytecode.

    Sets the flag that `workbench.log` checks, and raises `JobCancelled` asynchronously in the
    job's thread for loops that never log. Returns whether that job was running here.
    """
    ctx = _context._current
    if ctx is None or ctx.job_id != job_id:
        return False
    ctx.request_cancel()
    if _in_job_code and _job_thread is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(_job_thread), ctypes.py_object(JobCancelled))
    return True


async def hard_exit(code: int = 70) -> None:
    """Run on the worker (`client.run`) when a job ignored a cancel: end the process now."""
    os._exit(code)


@contextlib.contextmanager
def _job_environment(spec: dict[str, Any]) -> Iterator[None]:
    """`WORKBENCH_JOB_*` for child processes, the submitter's working directory, `sys.argv`."""
    keys = {"WORKBENCH_JOB_ID": spec["job_id"], "WORKBENCH_JOB_FOLDER": spec["folder"]}
    saved_env = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    saved_cwd = os.getcwd()
    cwd = spec.get("cwd")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    saved_argv, saved_path = sys.argv, list(sys.path)
    try:
        yield
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _apply_memory_fraction(framework: str | None) -> None:
    """torch's cap on GPU memory is per process: apply the slice's fraction once, when torch runs."""
    global _memory_fraction_applied
    fraction = os.environ.get("WORKBENCH_SLICE_MEMORY_FRACTION")
    if _memory_fraction_applied or framework != "torch" or not fraction:
        return
    import torch

    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(float(fraction), index)
    _memory_fraction_applied = True


def _script_args(params: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in params.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            args += [flag, str(value)]
    return args


def _run_target(spec: dict[str, Any], log_path: Path) -> Any:
    kind, params = spec["kind"], spec.get("params") or {}
    if kind == "callable":
        import cloudpickle

        # Unpickled here, not by Dask, so a function whose module this worker cannot import is
        # the job's failure (with its traceback), not a worker that dies reading the task.
        sys.path.insert(0, spec.get("cwd") or os.getcwd())
        fn = cloudpickle.loads(spec["fn"]) if isinstance(spec["fn"], bytes) else spec["fn"]
        return fn(**params)
    if kind == "script":
        import runpy

        path = spec["target"]
        sys.argv = [path, *_script_args(params), *spec.get("args", [])]
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise RuntimeError(f"script {path} exited with status {exc.code}") from None
        return None
    if kind == "notebook":
        import papermill

        output = Path(spec["folder"]) / "output.ipynb"
        papermill.execute_notebook(
            spec["target"], str(output), parameters=params, cwd=spec.get("cwd"),
            progress_bar=False, log_output=False, stdout_file=sys.stdout, stderr_file=sys.stderr,
            # the kernel's own start-up warnings ("running over TCP without encryption") are not the
            # job's output: its log level keeps them out of the job's log; cells' output is unchanged
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
        return None
    raise ValueError(f"unknown job kind {kind!r}")


def attempt_path(folder: Path, attempt: int) -> Path:
    """The file of one attempt: created when it starts, its outcome (JSON) written when it ends."""
    return folder / f"attempt-{attempt}.json"


def read_outcome(folder: Path, attempt: int) -> dict[str, Any]:
    """What the worker recorded for this attempt; {} if it never ended (or never started)."""
    import orjson

    try:
        return dict(orjson.loads(attempt_path(folder, attempt).read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError, ValueError):
        return {}  # missing, empty (started, never ended) or cut short by a dying worker


def _write_outcome(fd: int, data: dict[str, Any]) -> None:
    import orjson

    try:
        os.write(fd, orjson.dumps(data, default=str))
    finally:
        os.close(fd)


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt; return {state, reason, error, started_at, ended_at, pid, worker, ...}."""
    folder = Path(spec["folder"])
    log_path = Path(spec["log_path"])
    attempt = int(spec.get("attempt", 1))
    outcome: dict[str, Any] = {"job_id": spec["job_id"], "attempt": attempt, "pid": os.getpid(), "started_at": _now()}
    # Dask may re-run a task whose worker was lost; an attempt runs at most once. The attempt's
    # file is created here, exclusively, and receives the outcome at the end: empty means the
    # attempt started and never finished (one file, not a marker plus an outcome file).
    try:
        attempt_fd = os.open(attempt_path(folder, attempt), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        outcome.update(state="failed", reason="worker died", error="worker died: the worker running this attempt was lost and Dask re-ran it", ended_at=_now())
        return outcome
    try:
        _run_attempt(spec, outcome, folder, log_path, attempt)
    except BaseException:
        os.close(attempt_fd)  # the workbench itself failed here (a full disk): Dask reports it
        raise
    reading = outcome.get("energy")
    _write_outcome(attempt_fd, {**outcome, "energy": reading.as_json() if reading is not None and hasattr(reading, "as_json") else None})
    return outcome


def _run_attempt(spec: dict[str, Any], outcome: dict[str, Any], folder: Path, log_path: Path, attempt: int) -> None:
    global _job_thread, _in_job_code, _running_key
    outcome["worker"] = _announce_running({"job_id": spec["job_id"], "attempt": attempt, "event": "running", "pid": os.getpid(), "at": outcome["started_at"]})
    if attempt > 1:
        (folder / _context.METRICS_JSONL).unlink(missing_ok=True)  # the metrics are the last attempt's
    ctx = JobContext(spec["job_id"], folder, spec.get("framework"))
    _context.activate(ctx)
    _job_thread = threading.get_ident()
    t0 = time.perf_counter()
    result: Any = None
    try:
        with output_to(log_path), _job_environment(spec):
            if spec.get("verbose", True):
                print(f"[workbench] job {spec['job_id']} attempt {attempt} started {outcome['started_at']} "
                      f"pid {os.getpid()} slice {os.environ.get('WORKBENCH_SLICE_ID', '-')}", flush=True)
            try:
                _apply_memory_fraction(spec.get("framework"))
                with _profiled(spec, outcome), _metered(spec, outcome):
                    _in_job_code = True
                    try:
                        result = _run_target(spec, log_path)
                    finally:
                        _in_job_code = False
                outcome.update(state="succeeded", reason=None, error=None)
            except JobCancelled:
                outcome.update(state="cancelled", reason="cancelled", error=None)
                print("[workbench] job stopped: cancelled", file=sys.stderr, flush=True)
            except BaseException as exc:  # noqa: BLE001 - the job's failure is its outcome
                tb = traceback.format_exc()
                sys.stderr.write(tb)
                sys.stderr.flush()
                outcome.update(state="failed", reason=_one_line(exc), error=tb)
            if spec.get("verbose", True):
                print(f"[workbench] job {spec['job_id']} attempt {attempt} {outcome['state']} "
                      f"after {time.perf_counter() - t0:.2f} s", flush=True)
    finally:
        _running_key = None
        _context.activate(None)
        _job_thread = None
        ctx.close()
    outcome["ended_at"] = _now()
    outcome["duration_s"] = time.perf_counter() - t0
    if result is not None:
        outcome["has_result"] = _save_result(folder, result, outcome)


def _save_result(folder: Path, result: Any, outcome: dict[str, Any]) -> bool:
    try:
        import cloudpickle

        (folder / RESULT).write_bytes(cloudpickle.dumps(result))
        return True
    except Exception as exc:  # noqa: BLE001
        outcome["result_error"] = f"the return value could not be pickled: {_one_line(exc)}"
        return False


@contextlib.contextmanager
def _profiled(spec: dict[str, Any], outcome: dict[str, Any]) -> Iterator[None]:
    """`profile=True`: capture a torch.profiler / jax.profiler trace with the profiles module."""
    if not spec.get("profile"):
        yield
        return
    try:
        from workbench.profiles.capture import capture_trace
    except ImportError as exc:
        outcome["profile_error"] = f"profiling is not available: {exc}"
        print(f"[workbench] {outcome['profile_error']}", file=sys.stderr, flush=True)
        yield
        return
    capture = capture_trace(spec["framework"], Path(spec["folder"]) / "profile")  # set by submit; a bad one fails here
    with capture as handle:
        yield
    path = getattr(handle, "path", None)
    if path:
        outcome["trace_path"] = str(path)


def _slice_share() -> float:
    """The part of the GPU this slice holds (the meter counts the whole GPU)."""
    fraction = os.environ.get("WORKBENCH_SLICE_MEMORY_FRACTION")
    if fraction:
        with contextlib.suppress(ValueError):
            return min(1.0, max(0.001, float(fraction)))
    mig = os.environ.get("WORKBENCH_SLICE_MIG", "")
    if mig[:1].isdigit():
        return int(mig[0]) / 7
    return 1.0


@contextlib.contextmanager
def _metered(spec: dict[str, Any], outcome: dict[str, Any]) -> Iterator[None]:
    """Energy of the run, measured by the energy module's meter for the slice's devices."""
    global _meter
    try:
        if _meter is None:  # one per worker process: the slice's devices do not change
            from workbench.energy.meter import EnergyMeter

            _meter = EnergyMeter.from_environment(share=_slice_share())
        meter = _meter
    except Exception as exc:  # noqa: BLE001 - no meter is not a job failure
        outcome["energy_error"] = _one_line(exc)
        yield
        return
    with meter:
        yield
    reading = getattr(meter, "reading", None)
    if reading is not None:
        outcome["energy"] = reading


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
