"""What the row-wise Pallas kernels (softmax, layer norm, RMS norm) share: one pallas_call over
blocks of whole rows.

The GPU lowering masks neither the loads nor the stores of a block that overhangs the array, so
ragged inputs are padded to whole blocks (the kernels mask the padded columns; padded rows are
zeros and add nothing to the weight gradients); power-of-two rows, the fast path, are not copied.
A backward's weight gradients come out as one row of fp32 partial sums per program (stage one),
summed over programs by XLA (stage two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl


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
