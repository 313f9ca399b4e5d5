"""The Pallas layer norm, forward and backward (dx, dw, db), and its jax.custom_vjp wrapper.

Read after `kernels/layer_norm.py`. Each program owns a block of whole rows; the backward
recomputes the rows' mean and rstd from x (which it reads anyway) and writes dx plus one row of
fp32 partial sums of dw and db per program, which XLA sums (the two-stage reduction).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from workbench.kernels.registry import load_backend_module, load_module
from workbench.kernels.shapes import refuse

_op = load_module("layer_norm")
_rowwise = load_backend_module("_rowwise", "pallas")


def _normalize(x_ref, n_cols: int, eps: float) -> tuple[jax.Array, jax.Array]:
    """(xhat, rstd) of a block of rows, fp32, zero in the padded columns."""
    x = x_ref[...].astype(jnp.float32)
    valid = _rowwise.column_mask(x, n_cols)
    x = jnp.where(valid, x, 0.0)
    mean = jnp.sum(x, axis=1, keepdims=True) / n_cols
    xc = jnp.where(valid, x - mean, 0.0)
    rstd = 1.0 / jnp.sqrt(jnp.sum(xc * xc, axis=1, keepdims=True) / n_cols + eps)
    return xc * rstd, rstd


def _layer_norm_fwd_kernel(x_ref, w_ref, b_ref, o_ref, *, n_cols: int, eps: float):
    xhat, _ = _normalize(x_ref, n_cols, eps)
    w = w_ref[...].astype(jnp.float32)[None, :]
    b = b_ref[...].astype(jnp.float32)[None, :]
    o_ref[...] = (xhat * w + b).astype(o_ref.dtype)


def _layer_norm_bwd_kernel(x_ref, dy_ref, w_ref, dx_ref, dw_ref, db_ref, *, n_cols: int, eps: float):
    xhat, rstd = _normalize(x_ref, n_cols, eps)
    dy = dy_ref[...].astype(jnp.float32)
    g = w_ref[...].astype(jnp.float32)[None, :] * dy
    mean_g = jnp.sum(g, axis=1, keepdims=True) / n_cols
    mean_xg = jnp.sum(xhat * g, axis=1, keepdims=True) / n_cols
    dx_ref[...] = ((g - mean_g - xhat * mean_xg) * rstd).astype(dx_ref.dtype)
    dw_ref[...] = jnp.sum(dy * xhat, axis=0, keepdims=True)
    db_ref[...] = jnp.sum(dy, axis=0, keepdims=True)


def layer_norm_fwd(x, w, b, interpret: bool):
    kernel = functools.partial(_layer_norm_fwd_kernel, n_cols=x.shape[1], eps=_op.EPS)
    return _rowwise.rowwise_call(kernel, [x], [w, b], out_dtypes=[x.dtype], interpret=interpret)[0]


def layer_norm_bwd(x, w, dy, interpret: bool):
    kernel = functools.partial(_layer_norm_bwd_kernel, n_cols=x.shape[1], eps=_op.EPS)
    dx, dw, db = _rowwise.rowwise_call(kernel, [x, dy.astype(x.dtype)], [w], out_dtypes=[x.dtype], n_partials=2,
                                       interpret=interpret)
    return dx, dw.astype(w.dtype), db.astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x, w, b, interpret: bool):
    return layer_norm_fwd(x, w, b, interpret)


def _layer_norm_vjp_fwd(x, w, b, interpret: bool):
    refuse(_op.NAME, _op.check_grad_shape(tuple(x.shape)), grad=True)  # at trace time, before any kernel
    return layer_norm_fwd(x, w, b, interpret), (x, w)


def _layer_norm_vjp_bwd(interpret: bool, saved, dy):
    x, w = saved
    return layer_norm_bwd(x, w, dy, interpret)


_layer_norm.defvjp(_layer_norm_vjp_fwd, _layer_norm_vjp_bwd)


def layer_norm(x, w, b, *, interpret: bool = False):
    """Layer norm over the last axis of an (M, N) array (w, b of (N,)), differentiable with jax.grad.

    Raises:
        InvalidRequest: a shape the kernel (or, under differentiation, its backward) cannot take.
    """
    refuse(_op.NAME, _op.check_shape(tuple(x.shape)))
    if tuple(w.shape) != (x.shape[1],) or tuple(b.shape) != (x.shape[1],):
        refuse(_op.NAME, f"weight {tuple(w.shape)} and bias {tuple(b.shape)} must be ({x.shape[1]},)")
    return _layer_norm(x, w, b, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(layer_norm, interpret=interpret))
