"""What the row-wise Pallas kernels (softmax, layer norm, RMS norm) share: one pallas_call over
blocks of whole rows, and the norms' custom_vjp and public wrapper (layer norm and RMS norm differ
only in their kernels and the bias).

The GPU lowering masks neither the loads nor the stores of a block that overhangs the array, so
ragged inputs are padded to whole blocks (the kernels mask the padded columns; padded rows are
zeros and add nothing to the weight gradients); power-of-two rows, the fast path, are not copied.
A backward's weight gradients come out as one row of fp32 partial sums per program (stage one),
summed over programs by XLA (stage two).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import refuse

_shared = load_module("_rowwise")


def rowwise_call(kernel: Callable, rows: Sequence[jax.Array], vectors: Sequence[jax.Array] = (), *,
                 out_dtypes: Sequence, n_partials: int = 0, interpret: bool) -> list[jax.Array]:
    """Run `kernel(*row_refs, *vector_refs, *out_refs, *partial_refs)` over blocks of rows.

    `rows` are (M, N) arrays, `vectors` (N,) arrays; the outputs are (M, N) arrays of
    `out_dtypes`, then `n_partials` (N,) fp32 column sums of what each program wrote.
    """
    m, n = rows[0].shape
    block_cols = pl.next_power_of_2(n)
    block_rows = 8 if interpret else 1
    mp = pl.cdiv(m, block_rows) * block_rows
    programs = mp // block_rows
    if (mp, block_cols) != (m, n):
        rows = [jnp.pad(r, ((0, mp - m), (0, block_cols - n))) for r in rows]
    if block_cols != n:
        vectors = [jnp.pad(v, (0, block_cols - n)) for v in vectors]
    extra = {}
    if not interpret:
        from jax.experimental.pallas import triton as pltriton

        extra["compiler_params"] = pltriton.CompilerParams(num_warps=4 if block_cols <= 2048 else 8, num_stages=1)
    row_spec = pl.BlockSpec((block_rows, block_cols), lambda i: (i, 0))
    partial_spec = pl.BlockSpec((1, block_cols), lambda i: (i, 0))
    outs = pl.pallas_call(
        kernel,
        out_shape=[jax.ShapeDtypeStruct((mp, block_cols), d) for d in out_dtypes]
        + [jax.ShapeDtypeStruct((programs, block_cols), jnp.float32)] * n_partials,
        grid=(programs,),
        in_specs=[row_spec] * len(rows) + [pl.BlockSpec((block_cols,), lambda i: (0,))] * len(vectors),
        out_specs=[row_spec] * len(out_dtypes) + [partial_spec] * n_partials,
        interpret=interpret,
        **extra,
    )(*rows, *vectors)
    return [o[:m, :n] for o in outs[:len(out_dtypes)]] + [p[:, :n].sum(axis=0) for p in outs[len(out_dtypes):]]


def column_mask(x: jax.Array, n_cols: int) -> jax.Array:
    """True where a column of the block is inside the array."""
    return jax.lax.broadcasted_iota(jnp.int32, x.shape, 1) < n_cols


@dataclass(frozen=True)
class NormKernels:
    """One norm's operation module (`kernels/<op>.py`) and its kernel bodies.

    `fwd(x_ref, *vector_refs, o_ref, *, n_cols, eps)` and
    `bwd(x_ref, dy_ref, w_ref, dx_ref, *partial_refs, *, n_cols, eps)`, one partial per weight
    gradient (the op's GRAD_NAMES after dx).
    """

    op: ModuleType
    fwd: Callable
    bwd: Callable


def norm_fwd(kernels: NormKernels, interpret: bool, x: jax.Array, *vectors: jax.Array) -> jax.Array:
    kernel = functools.partial(kernels.fwd, n_cols=x.shape[1], eps=kernels.op.EPS)
    return rowwise_call(kernel, [x], vectors, out_dtypes=[x.dtype], interpret=interpret)[0]


def norm_bwd(kernels: NormKernels, interpret: bool, x: jax.Array, w: jax.Array, dy: jax.Array
             ) -> tuple[jax.Array, ...]:
    """(dx, dw[, db]); the weight gradients are per-program fp32 partial sums that XLA adds up."""
    kernel = functools.partial(kernels.bwd, n_cols=x.shape[1], eps=kernels.op.EPS)
    dx, *partials = rowwise_call(kernel, [x, dy.astype(x.dtype)], [w], out_dtypes=[x.dtype],
                                 n_partials=len(kernels.op.GRAD_NAMES) - 1, interpret=interpret)
    return (dx, *(p.astype(w.dtype) for p in partials))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _norm(kernels: NormKernels, interpret: bool, x: jax.Array, *vectors: jax.Array) -> jax.Array:
    return norm_fwd(kernels, interpret, x, *vectors)


def _norm_vjp_fwd(kernels: NormKernels, interpret: bool, x: jax.Array, *vectors: jax.Array):
    refuse(kernels.op.NAME, kernels.op.check_grad_shape(tuple(x.shape)), grad=True)  # at trace time
    return norm_fwd(kernels, interpret, x, *vectors), (x, vectors[0])


def _norm_vjp_bwd(kernels: NormKernels, interpret: bool, saved, dy):
    x, w = saved
    return norm_bwd(kernels, interpret, x, w, dy)


_norm.defvjp(_norm_vjp_fwd, _norm_vjp_bwd)


def norm(kernels: NormKernels, x: jax.Array, vectors: Mapping[str, jax.Array], interpret: bool) -> jax.Array:
    """A norm's public wrapper: refuse what its kernels cannot take, then run them under jax.custom_vjp.

    `vectors` names the (N,) inputs in order: {"weight": w} or {"weight": w, "bias": b}.
    """
    op = kernels.op
    refuse(op.NAME, op.check_shape(tuple(x.shape)))
    refuse(op.NAME, _shared.vectors_problem(x.shape[1], {k: v.shape for k, v in vectors.items()}))
    return _norm(kernels, interpret, x, *vectors.values())
