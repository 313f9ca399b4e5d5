"""The Pallas matrix product C = A @ B (forward only) and its jitted wrapper.

Read after `kernels/matmul.py`. The kernel body is a private function of refs at module level, as
in jax/experimental/pallas/ops/gpu: each program owns one (block_m, block_n) tile of C and loops
over K in block_k slices with an fp32 accumulator. `matmul(a, b, interpret=..., gpu_blocks=...)` is
the wrapper; `build` jits it once per configuration.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from workbench.kernels.registry import load_module

_op = load_module("matmul")


def _matmul_kernel(a_ref, b_ref, o_ref, *, block_k: int, n_k: int, precision):
    def body(i, acc):
        a = a_ref[:, pl.ds(i * block_k, block_k)]
        b = b_ref[pl.ds(i * block_k, block_k), :]
        return acc + jnp.dot(a, b, preferred_element_type=jnp.float32, precision=precision)

    acc = jax.lax.fori_loop(0, n_k, body, jnp.zeros(o_ref.shape, jnp.float32))
    o_ref[...] = acc.astype(o_ref.dtype)


def matmul(a: jax.Array, b: jax.Array, *, interpret: bool = False,
           gpu_blocks: tuple[int, int, int, int, int] | None = None) -> jax.Array:
    """C = A @ B of (M, K) and (K, N) arrays with fp32 accumulation, in a's dtype.

    `gpu_blocks` = (block_m, block_n, block_k, num_warps, num_stages) overrides the GPU
    configuration (`kernels/matmul.py` GPU_BLOCKS). K is zero-padded to a multiple of the K block:
    a dynamic slice at the edge would be clamped (shifted), not masked, so padding is what keeps
    the ragged tail exact. Power-of-two shapes, the fast path, are not copied.
    """
    m, k = a.shape
    n = b.shape[1]
    bm, bn, bk, warps, stages = (32, 32, 32, 1, 1) if interpret else (gpu_blocks or _op.GPU_BLOCKS)
    # The GPU lowering wants power-of-two blocks, and the K block here is all of K.
    kp = pl.cdiv(k, bk) * bk if interpret else max(bk, pl.next_power_of_2(k))
    # The GPU lowering masks neither loads nor stores of blocks that overhang the arrays, so M
    # and N are padded to whole blocks too; the output is cut back to (M, N).
    mp, np_ = pl.cdiv(m, bm) * bm, pl.cdiv(n, bn) * bn
    if (mp, kp) != (m, k):
        a = jnp.pad(a, ((0, mp - m), (0, kp - k)))
    if (kp, np_) != (k, n):
        b = jnp.pad(b, ((0, kp - k), (0, np_ - n)))
    precision = jax.lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
    extra = {}
    if not interpret:
        from jax.experimental.pallas import triton as pltriton

        extra["compiler_params"] = pltriton.CompilerParams(num_warps=warps, num_stages=stages)
    out = pl.pallas_call(
        functools.partial(_matmul_kernel, block_k=bk, n_k=kp // bk, precision=precision),
        out_shape=jax.ShapeDtypeStruct((mp, np_), a.dtype),
        grid=(mp // bm, np_ // bn),
        in_specs=[pl.BlockSpec((bm, kp), lambda i, j: (i, 0)), pl.BlockSpec((kp, bn), lambda i, j: (0, j))],
        out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
        interpret=interpret,
        **extra,
    )(a, b)
    return out[:m, :n]


@functools.cache
def build(interpret: bool, gpu_blocks: tuple[int, int, int, int, int] | None = None):
    """`matmul` jitted for one configuration (cached: the same callable for the same arguments)."""
    return jax.jit(functools.partial(matmul, interpret=interpret, gpu_blocks=gpu_blocks))
