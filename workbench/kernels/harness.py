"""The harness: check a kernel against its reference, time it against the framework's operation.

One result per (kernel, backend, shape, variant, dtype) case. A case that cannot run (a shape or
dtype the kernel does not support, a kernel that raises, returns the wrong shape or NaN) becomes
a failed result whose `error` names the kernel, the shape and what is wrong; the harness goes on
with the other cases. A case that is not run on purpose (bf16 in Triton's interpreter) has
`ok=None` and a `skipped_reason`.

Tolerances are torch.testing's defaults per dtype unless a kernel module declares its own, with
the reason, which then travels with every result (`tolerance_reason`). Errors are measured in
float64: `max_abs_err = max |out - ref|`, `max_rel_err = max |out - ref| / (|ref| + atol)`.

Backward passes (`pass_="bwd"`, "pass": "bwd" in JSON): the kernel's gradients of every input for
one seeded incoming gradient (rounded to the input dtype) against autograd of the reference run on
fp64 copies of the same inputs (fp32 on a GPU; jax.vjp in fp32 for Pallas), each gradient compared
as an output is; the error names the gradient (dx, dw, ...). Their tolerances are measured
(`registry.GRADIENT_TOLERANCE_REASON`). A backward benchmark times the backward alone (after one
forward) against the framework's autograd backward on the same inputs, with the backward's FLOP and
byte counts. The gradient comparison itself is in `workbench.kernels.gradients`; the roofline
fields (`place_on_roofline`) in `workbench.kernels.roofline`.

Timing: on a GPU, torch-side kernels are timed with CUDA events through
`triton.testing.do_bench` (warm-up, L2 flushed before each run, median); JAX-side kernels with
the wall clock around batches of launches ended by `block_until_ready` (median per launch; no
L2 flush, so use inputs larger than L2). In an interpreter timings are meaningless: every timing
field is None and `skipped_reason` says why.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.kernels.registry import KernelSpec, Shape
from workbench.kernels.roofline import place_on_roofline

BF16_INTERPRETER_REASON = (
    "the Triton interpreter mishandles bfloat16 (numpy has no bf16 type; products come out wrong): "
    "bfloat16 is checked on a GPU only"
)
INTERPRETER_TIMING_REASON = "interpreter mode (no GPU): timings would be meaningless, so none are shown"


def shape_label(shape: Shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def parse_shape(text: str) -> Shape:
    """'65x130' -> (65, 130)."""
    try:
        shape = tuple(int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ValueError(f"shape {text!r} is not of the form 65x130 (dimensions joined by 'x')") from None
    return shape


@dataclass
class Case:
    shape: Shape
    dtype: str
    params: dict[str, Any] = field(default_factory=dict)
    pass_: str = "fwd"  # fwd: the kernel's output; bwd: the gradients of its inputs


@dataclass
class KernelResult:
    """The outcome of checking or timing one case."""

    kernel: str
    backend: str
    what: str  # check | bench
    dtype: str
    shape: str
    pass_: str = "fwd"  # fwd | bwd; "pass" in JSON (results stored before backward passes have none)
    params: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    interpreted: bool = False
    ok: bool | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    rtol: float | None = None
    atol: float | None = None
    tolerance_reason: str | None = None
    skipped_reason: str | None = None
    error: str | None = None
    seed: int | None = None
    seconds: float | None = None
    # bench only
    median_ms: float | None = None
    gbps: float | None = None
    tflops: float | None = None
    flops: int | None = None
    bytes: int | None = None
    arithmetic_intensity: float | None = None
    timer: str | None = None
    baseline: str | None = None
    baseline_ms: float | None = None
    speedup_vs_baseline: float | None = None
    peak_gbps: float | None = None
    peak_tflops: float | None = None
    fraction_of_peak_bandwidth: float | None = None
    fraction_of_peak_flops: float | None = None
    attainable_tflops: float | None = None
    fraction_of_roofline: float | None = None
    measured_gbps: float | None = None
    fraction_of_measured_bandwidth: float | None = None

    def as_json(self) -> dict[str, Any]:
        fields = asdict(self)
        return {("pass" if k == "pass_" else k): v for k, v in fields.items()}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KernelResult:
        return cls(**{("pass_" if k == "pass" else k): v for k, v in item.items()})

    @property
    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        which = " backward" if self.pass_ == "bwd" else ""
        return f"{self.kernel}{which} ({self.backend}, {self.dtype}, {self.shape}{extra})"


class KernelResults(list[KernelResult]):
    """A list of KernelResult with a table for notebooks and `ok` for all of them."""

    @property
    def ok(self) -> bool:
        return all(r.ok is not False for r in self)

    @property
    def failed(self) -> list[KernelResult]:
        return [r for r in self if r.ok is False]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([r.as_json() for r in self])

    def __repr__(self) -> str:
        counts = {"ok": sum(r.ok is True for r in self), "failed": sum(r.ok is False for r in self),
                  "skipped": sum(r.ok is None for r in self)}
        lines = [f"<KernelResults {len(self)} cases: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped>"]
        lines += [f"  {_status(r)}: {r.label} {_detail(r)}" for r in self]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = "<tr><th>kernel</th><th>pass</th><th>backend</th><th>dtype</th><th>shape</th><th>status</th><th>max abs err</th><th>detail</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(r.kernel)}</td><td>{r.pass_}</td><td>{r.backend}</td><td>{r.dtype}</td>"
            f"<td>{html.escape(r.shape + ''.join(f' {k}={v}' for k, v in r.params.items()))}</td>"
            f"<td>{_status(r)}</td><td>{'' if r.max_abs_err is None else f'{r.max_abs_err:.2e}'}</td>"
            f"<td>{html.escape(_detail(r))}</td></tr>"
            for r in self
        )
        return f"<table>{head}{rows}</table>"


def _status(r: KernelResult) -> str:
    return {True: "ok", False: "FAILED", None: "skipped"}[r.ok]


def _detail(r: KernelResult) -> str:
    if r.error:
        return r.error
    if r.skipped_reason and r.what == "check":
        return r.skipped_reason
    if r.what == "check" and r.max_abs_err is not None:
        return f"max abs err {r.max_abs_err:.2e}"
    if r.median_ms is not None:
        text = f"{r.median_ms:.3f} ms"
        if r.gbps is not None:
            text += f", {r.gbps:.0f} GB/s"
        if r.tflops is not None:
            text += f", {r.tflops:.1f} TFLOP/s"
        if r.speedup_vs_baseline is not None:
            text += f", {r.speedup_vs_baseline:.2f}x {r.baseline}"
        return text
    return r.skipped_reason or ""


# -- cases ---------------------------------------------------------------------------------------
def cases_for(spec: KernelSpec, where: str, *, what: str = "check", shapes: Iterable[Shape] | None = None,
              dtypes: Iterable[str] | None = None, passes: Iterable[str] | None = None) -> list[Case]:
    """The cases to run: the given shapes, dtypes and passes, else the kernel's own for this kind of
    machine (checks: the forward, and the backward of a kernel that has one; benchmarks: the forward)."""
    if passes is None:
        passes = ("fwd", "bwd") if what == "check" and spec.has_backward else ("fwd",)
    if shapes is None:
        table = spec.check_shapes if what == "check" else spec.bench_shapes
        shapes = table.get(where) or table.get("cpu") or []
    if dtypes is None:
        dtypes = spec.dtypes if what == "check" else tuple(d for d in spec.dtypes if d != "float32") or spec.dtypes
    variants = spec.variants if what == "check" else (spec.bench_variants or spec.variants)
    return [Case(tuple(shape), dtype, dict(v), pass_) for pass_ in passes for shape in shapes for v in variants
            for dtype in dtypes]


# -- backends: how to make inputs, move them, compare and time -----------------------------------
class _TorchSide:
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.gpu = torch.cuda.is_available()
        self.device = "cuda" if self.gpu else "cpu"
        self.interpreted = not self.gpu

    def device_name(self) -> str:
        return self.torch.cuda.get_device_name() if self.gpu else "cpu"

    def convert(self, arrays: tuple[Any, ...], dtype: str) -> tuple[Any, ...]:
        torch = self.torch
        return tuple(torch.from_numpy(a).to(device=self.device, dtype=getattr(torch, dtype)) for a in arrays)

    def is_array(self, out: Any) -> bool:
        return isinstance(out, self.torch.Tensor)

    def dtype_name(self, out: Any) -> str:
        return str(out.dtype).removeprefix("torch.")

    def to_float64(self, out: Any) -> Any:
        return out.detach().to("cpu", self.torch.float64).numpy()

    def sync(self) -> None:
        if self.gpu:
            self.torch.cuda.synchronize()

    def vjp(self, fn: Callable[..., Any], inputs: tuple[Any, ...], params: dict[str, Any], make_dy: Callable[[Shape], Any],
            *, reference: bool = False) -> tuple[Any, tuple[Any, ...]]:
        """(fn's output, the gradients of `inputs` for the incoming gradient make_dy(output shape),
        rounded to the inputs' dtype).

        The reference runs on fp64 copies of the inputs (fp32 on a GPU), so the gradients' reference
        is as exact as the forward's."""
        torch = self.torch
        work = (torch.float32 if self.gpu else torch.float64) if reference else None
        leaves = [t.detach().to(work if work is not None else t.dtype).requires_grad_() for t in inputs]
        out = fn(*leaves, **params)
        if not isinstance(out, torch.Tensor) or out.grad_fn is None:
            raise _NotDifferentiable("its output has no autograd history (torch.autograd cannot differentiate it)")
        dy = torch.from_numpy(make_dy(tuple(out.shape))).to(device=out.device, dtype=inputs[0].dtype).to(out.dtype)
        return out, torch.autograd.grad(out, leaves, dy, allow_unused=True)

    def backward_fn(self, fn: Callable[..., Any], inputs: tuple[Any, ...], params: dict[str, Any]) -> Callable[[], Any]:
        """A callable that runs only the backward of fn on `inputs` (the forward runs once, here)."""
        torch = self.torch
        leaves = [t.detach().requires_grad_() for t in inputs]
        out = fn(*leaves, **params)
        dy = torch.randn_like(out)
        return lambda: torch.autograd.grad(out, leaves, dy, retain_graph=True)

    def time_ms(self, fn: Callable[[], Any]) -> tuple[float, str]:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, return_mode="median")), "cuda-events (triton.testing.do_bench median, L2 flushed)"

    def measured_bandwidth_gbps(self) -> float | None:
        """A large device-to-device copy, bytes read plus written, median of CUDA-event timings."""
        if not self.gpu:
            return None
        torch = self.torch
        n = 1 << 30
        src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
        dst = torch.empty_like(src)
        ms, _ = self.time_ms(functools.partial(dst.copy_, src))
        del src, dst
        torch.cuda.empty_cache()
        return 2 * n / (ms * 1e-3) / 1e9


class _JaxSide:
    name = "jax"

    def __init__(self) -> None:
        import jax

        self.jax = jax
        self.gpu = jax.default_backend() == "gpu"
        self.interpreted = not self.gpu

    def device_name(self) -> str:
        device = self.jax.devices()[0]
        return getattr(device, "device_kind", str(device)) if self.gpu else "cpu"

    def convert(self, arrays: tuple[Any, ...], dtype: str) -> tuple[Any, ...]:
        import jax.numpy as jnp

        return tuple(jnp.asarray(a).astype(dtype) for a in arrays)

    def is_array(self, out: Any) -> bool:
        return isinstance(out, self.jax.Array)

    def dtype_name(self, out: Any) -> str:
        return str(out.dtype)

    def to_float64(self, out: Any) -> Any:
        import numpy as np

        return np.asarray(out.astype("float32")).astype(np.float64)

    def sync(self) -> None:
        pass

    def vjp(self, fn: Callable[..., Any], inputs: tuple[Any, ...], params: dict[str, Any], make_dy: Callable[[Shape], Any],
            *, reference: bool = False) -> tuple[Any, tuple[Any, ...]]:
        """(fn's output, the gradients of `inputs` for make_dy(output shape) rounded to the inputs'
        dtype); the reference in fp32."""
        import jax.numpy as jnp

        jax = self.jax
        arrays = [a.astype(jnp.float32) for a in inputs] if reference else list(inputs)
        forward = functools.partial(fn, **params)
        out_shape = jax.eval_shape(forward, *arrays)
        dy = jnp.asarray(make_dy(tuple(out_shape.shape))).astype(inputs[0].dtype).astype(out_shape.dtype)

        # One jitted program for the forward and the backward: in interpret mode each eager
        # pallas_call would be compiled on its own (about a third slower here).
        @jax.jit  # type: ignore[untyped-decorator]  # jax.jit's decorator form is unannotated
        def forward_and_grads(*args: Any) -> tuple[Any, Any]:
            out, pullback = jax.vjp(forward, *args)
            return out, pullback(dy)

        result: tuple[Any, tuple[Any, ...]] = forward_and_grads(*arrays)
        return result

    def backward_fn(self, fn: Callable[..., Any], inputs: tuple[Any, ...], params: dict[str, Any]) -> Callable[[], Any]:
        """A callable that runs only the backward of fn on `inputs`: the jitted pullback of one forward."""
        import jax.numpy as jnp

        jax = self.jax
        out, pullback = jax.vjp(jax.jit(functools.partial(fn, **params)), *inputs)
        dy = jnp.ones_like(out)
        apply = jax.jit(lambda f, g: f(g))
        return lambda: apply(pullback, dy)

    def time_ms(self, fn: Callable[[], Any], *, batches: int = 15, per_batch: int = 10) -> tuple[float, str]:
        jax = self.jax
        jax.block_until_ready(fn())
        per_launch = []
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(per_batch):
                out = fn()
            jax.block_until_ready(out)
            per_launch.append((time.perf_counter() - start) * 1e3 / per_batch)
        return statistics.median(per_launch), f"wall clock, median of {batches} batches of {per_batch} launches (no L2 flush)"

    def measured_bandwidth_gbps(self) -> float | None:
        return None


class _NotDifferentiable(Exception):
    """The kernel's output cannot be differentiated by its framework."""


def side_for(backend: str) -> _TorchSide | _JaxSide:
    return _TorchSide() if backend == "triton" else _JaxSide()


# -- check --------------------------------------------------------------------------------------
def _compare(side: Any, out: Any, ref: Any, rtol: float | None, atol: float | None) -> tuple[bool, float, float, str | None]:
    import numpy as np

    if rtol is None or atol is None:  # `_start` fails a case whose dtype has no tolerance first
        raise ValueError(f"no tolerance to compare with (rtol={rtol}, atol={atol})")

    o, r = side.to_float64(out), side.to_float64(ref)
    nan_out, nan_ref = np.isnan(o), np.isnan(r)
    diff = np.abs(o - r)
    finite = ~(nan_out | nan_ref)
    max_abs = float(diff[finite].max()) if finite.any() else 0.0
    max_rel = float((diff[finite] / (np.abs(r[finite]) + atol)).max()) if finite.any() else 0.0
    unexpected_nan = int((nan_out & ~nan_ref).sum())
    if unexpected_nan:
        return False, max_abs, max_rel, f"{unexpected_nan} NaN values where the reference has none"
    close = diff[finite] <= atol + rtol * np.abs(r[finite])
    if not close.all():
        bad = int((~close).sum())
        return False, max_abs, max_rel, f"{bad} of {close.size} values outside rtol={rtol:g}, atol={atol:g}"
    return True, max_abs, max_rel, None


def _base(spec: KernelSpec, case: Case, side: Any, what: str) -> KernelResult:
    known = case.dtype in ("float32", "float16", "bfloat16")
    rtol, atol, why = spec.tolerance(case.dtype, case.pass_) if known else (None, None, None)
    return KernelResult(kernel=spec.name, backend=spec.backend, what=what, pass_=case.pass_, dtype=case.dtype,
                        shape=shape_label(case.shape), params=dict(case.params), device=side.device_name(),
                        interpreted=side.interpreted, rtol=rtol, atol=atol, tolerance_reason=why)


def _start(spec: KernelSpec, case: Case, side: Any, what: str, results: KernelResults) -> KernelResult:
    """A new result for `case`, appended; already failed (ok=False, error) if the case cannot run."""
    result = _base(spec, case, side, what)
    results.append(result)
    problem = spec.problem_with(case.shape, case.dtype, case.params, case.pass_)
    if problem:
        result.ok = False
        result.error = f"{result.label}: {problem}"
    return result


def _hint(spec: KernelSpec, side: Any) -> str:
    if spec.backend == "triton" and not side.gpu and os.environ.get("TRITON_INTERPRET") != "1":
        return (" (no GPU here: Triton kernels run only in its interpreter, which needs "
                "os.environ['TRITON_INTERPRET'] = '1' set before triton is imported)")
    return ""


def _exception_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first_lines = text.splitlines()
    return " ".join(first_lines[:3])[:600]


def check_cases(spec: KernelSpec, cases: list[Case], *, seed: int | None = None) -> KernelResults:
    """Run `spec` on each case and compare it with its reference."""
    import numpy as np

    side = side_for(spec.backend)
    results = KernelResults()
    kernel: Callable[..., Any] | None = None
    build_error: str | None = None
    for case in cases:
        result = _start(spec, case, side, "check", results)
        started = time.perf_counter()
        if result.ok is False:
            continue
        if spec.backend == "triton" and side.interpreted and case.dtype == "bfloat16":
            result.skipped_reason = BF16_INTERPRETER_REASON
            continue
        if kernel is None and build_error is None:
            try:
                kernel = spec.build(side.interpreted)
            except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
                build_error = f"could not be built: {_exception_text(exc)}{_hint(spec, side)}"
        if build_error is not None or kernel is None:
            result.ok = False
            result.error = f"{result.label}: {build_error}"
            continue
        case_seed = seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
        result.seed = case_seed
        if case.pass_ == "bwd":
            from workbench.kernels.gradients import check_backward

            check_backward(spec, kernel, case, side, result, case_seed)
            result.seconds = round(time.perf_counter() - started, 4)
            continue
        try:
            inputs = side.convert(spec.make_inputs(case.shape, np.random.default_rng(case_seed), **case.params), case.dtype)
            ref = spec.reference(*inputs, **case.params)
        except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
            result.ok = False
            result.error = f"{result.label}: the reference failed: {_exception_text(exc)}"
            continue
        try:
            out = kernel(*inputs, **case.params)
            side.sync()
        except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
            result.ok = False
            result.error = f"{result.label}: the kernel raised {_exception_text(exc)}{_hint(spec, side)}"
            continue
        finally:
            result.seconds = round(time.perf_counter() - started, 4)
        if not side.is_array(out):
            result.ok = False
            result.error = f"{result.label}: the kernel returned {type(out).__name__}, not an array of shape {tuple(ref.shape)}"
            continue
        if tuple(out.shape) != tuple(ref.shape):
            result.ok = False
            result.error = f"{result.label}: the kernel returned shape {tuple(out.shape)}; the reference returns {tuple(ref.shape)}"
            continue
        if side.dtype_name(out) != side.dtype_name(ref):
            result.ok = False
            result.error = f"{result.label}: the kernel returned dtype {side.dtype_name(out)}; the reference returns {side.dtype_name(ref)}"
            continue
        ok, max_abs, max_rel, why = _compare(side, out, ref, result.rtol, result.atol)
        result.ok, result.max_abs_err, result.max_rel_err = ok, max_abs, max_rel
        if why:
            result.error = f"{result.label}: {why} (max abs err {max_abs:.3g})"
    return results


# -- bench --------------------------------------------------------------------------------------
def bench_cases(spec: KernelSpec, cases: list[Case], *, seed: int | None = 0, baseline: bool = True,
                measured_gbps: float | None = None, device_spec: Any = None) -> KernelResults:
    """Time `spec` on each case, and the framework's operation on the same inputs in the same run.

    `device_spec` (a catalog DeviceSpec) defaults to the catalog's entry for this GPU;
    `measured_gbps` is a measured copy bandwidth to compare memory-bound kernels with.
    """
    import numpy as np

    side: Any = side_for(spec.backend)  # `side.jax` below only on the JAX side
    results = KernelResults()
    if device_spec is None and side.gpu:
        from workbench.inventory.catalog import lookup

        device_spec = lookup(side.device_name())
    kernel = None
    for case in cases:
        result = _start(spec, case, side, "bench", results)
        if result.ok is False:
            continue
        itemsize = {"float32": 4, "float16": 2, "bfloat16": 2}[case.dtype]
        count_flops, count_bytes = (spec.grad_flops, spec.grad_bytes_moved) if case.pass_ == "bwd" else (spec.flops, spec.bytes_moved)
        result.flops = count_flops(case.shape, **case.params) if count_flops else None
        result.bytes = count_bytes(case.shape, itemsize, **case.params) if count_bytes else None
        if result.flops and result.bytes:
            result.arithmetic_intensity = result.flops / result.bytes
        result.baseline = spec.framework_name
        if side.interpreted:
            result.skipped_reason = INTERPRETER_TIMING_REASON
            continue
        try:
            kernel = kernel or spec.build(False)
            inputs = side.convert(spec.make_inputs(case.shape, np.random.default_rng(seed), **case.params), case.dtype)
            fn = side.backward_fn(kernel, inputs, case.params) if case.pass_ == "bwd" else _bound(spec, kernel, inputs, case.params)
            result.median_ms, result.timer = side.time_ms(fn)
            result.ok = True
        except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
            result.ok = False
            result.error = f"{result.label}: the kernel raised {_exception_text(exc)}"
            traceback.print_exc()
            continue
        seconds = result.median_ms * 1e-3
        if result.bytes:
            result.gbps = result.bytes / seconds / 1e9
        if result.flops:
            result.tflops = result.flops / seconds / 1e12
        if baseline and spec.framework is not None:
            try:
                if case.pass_ == "bwd":
                    fn = side.backward_fn(spec.framework, inputs, case.params)
                elif spec.backend == "triton":
                    fn = functools.partial(spec.framework, *inputs, **case.params)
                else:
                    fn = functools.partial(side.jax.jit(_static(spec.framework, case.params)), *inputs)
                result.baseline_ms, _ = side.time_ms(fn)
                result.speedup_vs_baseline = result.baseline_ms / result.median_ms
            except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
                result.skipped_reason = f"the baseline {spec.framework_name} failed: {_exception_text(exc)}"
        place_on_roofline(result, device_spec, measured_gbps)
    return results


def _static(fn: Callable[..., Any], params: dict[str, Any]) -> Callable[..., Any]:
    return functools.partial(fn, **params)


def _bound(spec: KernelSpec, kernel: Callable[..., Any], inputs: tuple[Any, ...], params: dict[str, Any]) -> Callable[[], Any]:
    return lambda: kernel(*inputs, **params)
