"""The Pallas layer norm, forward and backward (dx, dw, db), and its jax.custom_vjp wrapper.

Read after `kernels/layer_norm.py`. Each program owns a block of whole rows; the backward
recomputes the rows' mean and rstd from x (which it reads anyway) and writes dx plus one row of
fp32 partial sums of dw and db per program, which XLA sums (the two-stage reduction). The
pallas_call, the custom_vjp and the checks of the wrapper are those of every norm, in `_rowwise.py`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from workbench.kernels.registry import load_backend_module, load_module

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


_KERNELS = _rowwise.NormKernels(_op, _layer_norm_fwd_kernel, _layer_norm_bwd_kernel)


def layer_norm(x, w, b, *, interpret: bool = False):
    """Layer norm over the last axis of an (M, N) array (w, b of (N,)), differentiable with jax.grad.

    Raises:
        InvalidRequest: a shape the kernel (or, under differentiation, its backward) cannot take.
    """
    return _rowwise.norm(_KERNELS, x, {"weight": w, "bias": b}, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(layer_norm, interpret=interpret))
