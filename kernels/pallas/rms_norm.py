"""The Pallas RMS norm, forward and backward (dx, dw), and its jax.custom_vjp wrapper.

Read after `kernels/rms_norm.py`. Each program owns a block of whole rows; the backward
recomputes rstd from x and writes dx plus one row of fp32 partial sums of dw per program, which
XLA sums (the two-stage reduction).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from workbench.kernels.registry import load_backend_module, load_module
from workbench.kernels.shapes import refuse

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


def rms_norm_fwd(x, w, interpret: bool):
    kernel = functools.partial(_rms_norm_fwd_kernel, n_cols=x.shape[1], eps=_op.EPS)
    return _rowwise.rowwise_call(kernel, [x], [w], out_dtypes=[x.dtype], interpret=interpret)[0]


def rms_norm_bwd(x, w, dy, interpret: bool):
    kernel = functools.partial(_rms_norm_bwd_kernel, n_cols=x.shape[1], eps=_op.EPS)
    dx, dw = _rowwise.rowwise_call(kernel, [x, dy.astype(x.dtype)], [w], out_dtypes=[x.dtype], n_partials=1,
                                   interpret=interpret)
    return dx, dw.astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _rms_norm(x, w, interpret: bool):
    return rms_norm_fwd(x, w, interpret)


def _rms_norm_vjp_fwd(x, w, interpret: bool):
    refuse(_op.NAME, _op.check_grad_shape(tuple(x.shape)), grad=True)  # at trace time, before any kernel
    return rms_norm_fwd(x, w, interpret), (x, w)


def _rms_norm_vjp_bwd(interpret: bool, saved, dy):
    x, w = saved
    return rms_norm_bwd(x, w, dy, interpret)


_rms_norm.defvjp(_rms_norm_vjp_fwd, _rms_norm_vjp_bwd)


def rms_norm(x, w, *, interpret: bool = False):
    """RMS norm over the last axis of an (M, N) array (w of (N,)), differentiable with jax.grad.

    Raises:
        InvalidRequest: a shape the kernel (or, under differentiation, its backward) cannot take.
    """
    refuse(_op.NAME, _op.check_shape(tuple(x.shape)))
    if tuple(w.shape) != (x.shape[1],):
        refuse(_op.NAME, f"weight {tuple(w.shape)} must be ({x.shape[1]},)")
    return _rms_norm(x, w, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(rms_norm, interpret=interpret))
