"""Capture a trace of the code in a `with` block: torch.profiler or jax.profiler.

`capture_trace` needs no database, so a job's worker process can call it; the driver then
registers the file with `wb.profiles.register(...)`. `ProfileService.capture` wraps it for
notebooks and registers the result itself.

    with capture_trace("torch", out_dir) as cap:
        train_step()
    cap.path  # the Chrome/Kineto JSON trace

The profilers' own lines (kineto's `profiler_start`/`profiler_stop`, jax's plugin messages) are
written to `<out_dir>/profiler.log`, not to the process's output: in a job, that output is the
job's log, which holds what the user wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import BackendUnavailable, InvalidRequest
from workbench.output import output_to

FRAMEWORKS = ("torch", "jax")
PROFILER_LOG = "profiler.log"


@dataclass
class Capture:
    """What a capture produced; `path` is set when the `with` block ends."""

    framework: str
    out_dir: Path
    path: Path | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    wall_s: float | None = None
    device: str | None = None
    profiler: Any = None  # torch: the torch.profiler.profile object, for `p.profiler.step()`
    profile: Any = None  # set by `ProfileService.capture` once the trace is registered

    def __getattr__(self, item: str) -> Any:
        # After `with wb.profile() as p:`, `p.summary()`, `p.idle()`... act on the stored profile.
        profile = self.__dict__.get("profile")
        if profile is None or item.startswith("_"):
            raise AttributeError(f"{type(self).__name__!s} has no attribute {item!r} (the profile exists once the with block ends)")
        return getattr(profile, item)

    _step_scope: Any = field(default=None, repr=False)
    _step_number: int = field(default=0, repr=False)

    def step(self) -> None:
        """Mark the end of a training step: torch gets a `ProfilerStep#N` annotation per step
        (as torch.profiler's schedules write them), so `steps()` can time each one; jax: no-op."""
        if self.framework != "torch" or self._step_scope is None:
            return
        self._end_step()
        self._step_number += 1
        self._begin_step()

    def _begin_step(self) -> None:
        from torch.profiler import record_function

        self._step_scope = record_function(f"ProfilerStep#{self._step_number}")
        self._step_scope.__enter__()

    def _end_step(self) -> None:
        if self._step_scope is not None:
            self._step_scope.__exit__(None, None, None)
            self._step_scope = None


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


@contextlib.contextmanager
def capture_trace(
    framework: str,
    out_dir: str | os.PathLike[str],
    *,
    record_shapes: bool = True,
    with_stack: bool = False,
    profile_memory: bool = False,
    name: str | None = None,
) -> Iterator[Capture]:
    """Profile the block with the framework's own profiler and write its trace under `out_dir`.

    torch: `torch.profiler.profile` with CPU activity (and CUDA when a GPU is visible),
    exported as Chrome trace JSON (`<name>.pt.trace.json`). Shapes, stacks and memory
    ([memory] instants) when asked. jax: `jax.profiler.trace` with a Perfetto trace; the
    `.trace.json.gz` it writes under `plugins/profile/<run>/` becomes `path`.
    """
    if framework not in FRAMEWORKS:
        raise InvalidRequest(f"cannot profile framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cap = Capture(framework=framework, out_dir=out)
    label = name or f"{framework}-{_stamp()}"
    t0 = time.perf_counter()
    if framework == "torch":
        with _torch_capture(cap, out, label, record_shapes, with_stack, profile_memory):
            yield cap
    else:
        with _jax_capture(cap, out, label):
            yield cap
    cap.wall_s = time.perf_counter() - t0


@contextlib.contextmanager
def _torch_capture(cap: Capture, out: Path, label: str, record_shapes: bool, with_stack: bool,
                   profile_memory: bool) -> Iterator[None]:
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError as exc:
        raise BackendUnavailable(f"torch is not installed here ({exc}); install the 'torch' extra to profile PyTorch") from None
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
        cap.device = torch.cuda.get_device_name(0)
    else:
        cap.device = "cpu"
    prof = profile(activities=activities, record_shapes=record_shapes, with_stack=with_stack,
                   profile_memory=profile_memory)
    cap.profiler = prof
    with output_to(out / PROFILER_LOG):
        prof.start()
    cap._begin_step()
    try:
        yield
    finally:
        cap._end_step()
        with output_to(out / PROFILER_LOG):
            prof.stop()
    path = out / f"{label}.pt.trace.json"
    with output_to(out / PROFILER_LOG):
        prof.export_chrome_trace(str(path))
    cap.path = path
    cap.profiler = None


@contextlib.contextmanager
def _jax_capture(cap: Capture, out: Path, label: str) -> Iterator[None]:
    try:
        import jax
    except ImportError as exc:
        raise BackendUnavailable(f"jax is not installed here ({exc}); install the 'jax' extra to profile JAX") from None
    log_dir = out / label
    try:
        cap.device = str(jax.devices()[0].device_kind)
    except Exception:  # noqa: BLE001 - no backend yet is not a reason to refuse profiling
        cap.device = None
    with output_to(out / PROFILER_LOG):
        jax.profiler.start_trace(str(log_dir), create_perfetto_trace=True)
    try:
        yield
    finally:
        with output_to(out / PROFILER_LOG):
            jax.profiler.stop_trace()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
    found = sorted(log_dir.glob("plugins/profile/*/*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        found = sorted(log_dir.glob("plugins/profile/*/perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise BackendUnavailable(f"jax.profiler wrote no .trace.json.gz under {log_dir}; is the profiler plugin available?")
    cap.path = found[-1]
