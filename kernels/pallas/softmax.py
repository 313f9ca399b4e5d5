"""The Pallas softmax, forward and backward, and its jax.custom_vjp wrapper.

Read after `kernels/softmax.py`. The kernel bodies are private functions of refs, as in
jax/experimental/pallas/ops/gpu/softmax.py; `softmax(x, interpret=...)` is the public wrapper.
Backward: dx = y * (dy - sum(y * dy)) from the saved output y.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from workbench.kernels.registry import load_backend_module, load_module
from workbench.kernels.shapes import refuse

_op = load_module("softmax")
_rowwise = load_backend_module("_rowwise", "pallas")


def _softmax_fwd_kernel(x_ref, o_ref, *, n_cols: int):
    x = x_ref[...].astype(jnp.float32)
    x = jnp.where(_rowwise.column_mask(x, n_cols), x, -jnp.inf)  # ragged last block of columns
    x = x - jnp.max(x, axis=1, keepdims=True)
    e = jnp.exp(x)
    o_ref[...] = (e / jnp.sum(e, axis=1, keepdims=True)).astype(o_ref.dtype)


def _softmax_bwd_kernel(y_ref, dy_ref, dx_ref):
    y = y_ref[...].astype(jnp.float32)  # padded columns hold y = 0: they add nothing to the sum
    dy = dy_ref[...].astype(jnp.float32)
    dx_ref[...] = (y * (dy - jnp.sum(y * dy, axis=1, keepdims=True))).astype(dx_ref.dtype)


def softmax_fwd(x: jax.Array, interpret: bool) -> jax.Array:
    kernel = functools.partial(_softmax_fwd_kernel, n_cols=x.shape[1])
    return _rowwise.rowwise_call(kernel, [x], out_dtypes=[x.dtype], interpret=interpret)[0]


def softmax_bwd(y: jax.Array, dy: jax.Array, interpret: bool) -> jax.Array:
    return _rowwise.rowwise_call(_softmax_bwd_kernel, [y, dy.astype(y.dtype)], out_dtypes=[y.dtype],
                                 interpret=interpret)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _softmax(x: jax.Array, interpret: bool) -> jax.Array:
    return softmax_fwd(x, interpret)


def _softmax_vjp_fwd(x: jax.Array, interpret: bool) -> tuple[jax.Array, jax.Array]:
    refuse(_op.NAME, _op.check_grad_shape(tuple(x.shape)), grad=True)  # at trace time, before any kernel
    y = softmax_fwd(x, interpret)
    return y, y


def _softmax_vjp_bwd(interpret: bool, y: jax.Array, dy: jax.Array) -> tuple[jax.Array]:
    return (softmax_bwd(y, dy, interpret),)


_softmax.defvjp(_softmax_vjp_fwd, _softmax_vjp_bwd)


def softmax(x: jax.Array, *, interpret: bool = False) -> jax.Array:
    """Row-wise softmax of an (M, N) array, N <= 32768 (16384 with gradients); differentiable
    with jax.grad; returns x's dtype.

    Raises:
        InvalidRequest: a shape the kernel (or, under differentiation, its backward) cannot take.
    """
    refuse(_op.NAME, _op.check_shape(tuple(x.shape)))
    return _softmax(x, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(softmax, interpret=interpret))
