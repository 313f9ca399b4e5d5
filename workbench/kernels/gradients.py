"""Backward checks: a kernel's input gradients against autograd of its reference.

For one seeded incoming gradient (rounded to the input dtype), the kernel's gradient of every
input is compared, as an output is (`harness._compare`), with autograd of the reference on fp64
copies of the same inputs (fp32 on a GPU; jax.vjp in fp32 for Pallas); the error names the
gradient (dx, dw, ...). `harness.check_cases` calls it for each `pass_="bwd"` case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.kernels.harness import Case, KernelResult, _compare, _exception_text, _hint, _NotDifferentiable
from workbench.kernels.registry import KernelSpec, Shape


def check_backward(spec: KernelSpec, kernel: Callable[..., Any], case: Case, side: Any, result: KernelResult,
                    seed: int) -> None:
    """Compare the kernel's input gradients with autograd of the reference, for one incoming gradient."""
    import numpy as np

    dys: dict[Shape, Any] = {}

    def make_dy(shape: Shape) -> Any:
        if shape not in dys:
            dys[shape] = np.random.default_rng(seed + 1).standard_normal(shape, dtype="float32")
        return dys[shape]

    try:
        inputs = side.convert(spec.make_inputs(case.shape, np.random.default_rng(seed), **case.params), case.dtype)
        _, ref_grads = side.vjp(spec.reference, inputs, case.params, make_dy, reference=True)
    except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
        result.ok = False
        result.error = f"{result.label}: autograd of the reference failed: {_exception_text(exc)}"
        return
    try:
        _, grads = side.vjp(kernel, inputs, case.params, make_dy)
        side.sync()
    except _NotDifferentiable as exc:
        result.ok = False
        result.error = f"{result.label}: the kernel cannot be differentiated: {exc}"
        return
    except Exception as exc:  # noqa: BLE001 - a kernel's failure is a result, not a crash
        result.ok = False
        result.error = f"{result.label}: the kernel's backward raised {_exception_text(exc)}{_hint(spec, side)}"
        return
    names = spec.grad_names or tuple(f"d{i}" for i in range(len(inputs)))
    result.ok, result.max_abs_err, result.max_rel_err = True, 0.0, 0.0
    problems = []
    for name, grad, ref in zip(names, grads, ref_grads, strict=False):
        if grad is None:
            problems.append(f"{name}: no gradient")
            continue
        if tuple(grad.shape) != tuple(ref.shape):
            problems.append(f"{name}: shape {tuple(grad.shape)}, the reference's {tuple(ref.shape)}")
            continue
        if side.dtype_name(grad) != case.dtype:
            problems.append(f"{name}: dtype {side.dtype_name(grad)}, not the input's {case.dtype}")
            continue
        ok, max_abs, max_rel, why = _compare(side, grad, ref, result.rtol, result.atol)
        result.max_abs_err = max(result.max_abs_err, max_abs)
        result.max_rel_err = max(result.max_rel_err, max_rel)
        if why:
            problems.append(f"{name}: {why} (max abs err {max_abs:.3g})")
    if problems:
        result.ok = False
        result.error = f"{result.label}: {'; '.join(problems)}"
