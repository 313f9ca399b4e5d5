"""The Pallas RMS norm, forward and backward (dx, dw), and its jax.custom_vjp wrapper.

Read after `kernels/rms_norm.py`. Each program owns a block of whole rows; the backward
recomputes rstd from x and writes dx plus one row of fp32 partial sums of dw per program, which
XLA sums (the two-stage reduction). The pallas_call, the custom_vjp and the checks of the wrapper
are those of every norm, in `_rowwise.py`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from workbench.kernels.registry import load_backend_module, load_module

_op = load_module("rms_norm")
_rowwise = load_backend_module("_rowwise", "pallas")


def _rms(x_ref, n_cols: int, eps: float) -> tuple[jax.Array, jax.Array]:
    """(xhat, rstd) of a block of rows, fp32, zero in the padded columns."""
    x = x_ref[...].astype(jnp.float32)
    x = jnp.where(_rowwise.column_mask(x, n_cols), x, 0.0)
    rstd = 1.0 / jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True) / n_cols + eps)
    return x * rstd, rstd


def _rms_norm_fwd_kernel(x_ref, w_ref, o_ref, *, n_cols: int, eps: float):
    xhat, _ = _rms(x_ref, n_cols, eps)
    o_ref[...] = (xhat * w_ref[...].astype(jnp.float32)[None, :]).astype(o_ref.dtype)


def _rms_norm_bwd_kernel(x_ref, dy_ref, w_ref, dx_ref, dw_ref, *, n_cols: int, eps: float):
    xhat, rstd = _rms(x_ref, n_cols, eps)
    dy = dy_ref[...].astype(jnp.float32)
    g = w_ref[...].astype(jnp.float32)[None, :] * dy
    mean_xg = jnp.sum(xhat * g, axis=1, keepdims=True) / n_cols
    dx_ref[...] = ((g - xhat * mean_xg) * rstd).astype(dx_ref.dtype)
    dw_ref[...] = jnp.sum(dy * xhat, axis=0, keepdims=True)


_KERNELS = _rowwise.NormKernels(_op, _rms_norm_fwd_kernel, _rms_norm_bwd_kernel)


def rms_norm(x, w, *, interpret: bool = False):
    """RMS norm over the last axis of an (M, N) array (w of (N,)), differentiable with jax.grad.

    Raises:
        InvalidRequest: a shape the kernel (or, under differentiation, its backward) cannot take.
    """
    return _rowwise.norm(_KERNELS, x, {"weight": w}, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(rms_norm, interpret=interpret))
