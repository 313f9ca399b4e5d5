"""Row-wise softmax over the last axis of a 2-D array.

Reads top to bottom as: what it supports, its FLOP and byte counts, the references (PyTorch for
Triton, `jax.numpy` for Pallas), the framework's own operation (the benchmark's baseline), then
the Triton kernel and the Pallas kernel. The workbench loads this file by path under a private
module name (`workbench._kernels.softmax`); triton and jax are imported only when a kernel is
first built, so listing kernels never imports either (Triton's interpreter must be switched on
before triton is imported).

Each program owns whole rows: one read of a row, max, exp, sum and one write, all in registers,
so the kernel moves the fewest bytes possible (read once, write once).
"""

from __future__ import annotations

import functools

from workbench.kernels.shapes import (
    ROWWISE_BENCH_SHAPES,
    ROWWISE_CHECK_SHAPES,
    rowwise_problem,
)

NAME = "softmax"
SUMMARY = "row-wise softmax of an (M, N) array, fp32 arithmetic"
DTYPES = ("float32", "float16", "bfloat16")
CHECK_SHAPES = ROWWISE_CHECK_SHAPES  # non-powers of two, a single element, a single row
BENCH_SHAPES = ROWWISE_BENCH_SHAPES
VARIANTS: tuple[dict, ...] = ({},)
TOLERANCES: dict[str, tuple[float, float, str]] = {}
FRAMEWORK = {"torch": "torch.softmax", "jax": "jax.nn.softmax"}
BOUND = "memory"


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    """Why this shape cannot be run, or None when it can."""
    return rowwise_problem(shape)


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 5 * m * n  # max, subtract, exp, sum, divide


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return 2 * m * n * itemsize


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    """float32 numpy inputs; the harness casts them to the dtype under test and to the device."""
    return (rng.standard_normal(shape, dtype="float32") * 3.0,)


# -- PyTorch -----------------------------------------------------------------------------------
def torch_reference(x, **params):
    import torch

    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def torch_framework(x, **params):
    import torch

    return torch.softmax(x, dim=-1)


@functools.cache
def triton_kernel():
    """Build the Triton softmax (imports triton here, so TRITON_INTERPRET is honoured)."""
    import torch
    import triton
    import triton.language as tl

    # Triton resolves the names a kernel uses in its module's globals, not in this function's scope.
    globals().update(triton=triton, tl=tl)

    @triton.jit
    def _softmax_kernel(x_ptr, y_ptr, n_rows, n_cols, stride_x, stride_y,
                        BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        mask = offs < n_cols
        for r in range(ROWS_PER_PROGRAM):
            row = tl.program_id(0) * ROWS_PER_PROGRAM + r
            if row < n_rows:
                x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=-float("inf")).to(tl.float32)
                x = x - tl.max(x, axis=0)
                e = tl.exp(x)
                y = e / tl.sum(e, axis=0)
                tl.store(y_ptr + row * stride_y + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    # On a GPU the warps per program are tuned per row length; the interpreter ignores them.
    tuned = triton.autotune(configs=[triton.Config({}, num_warps=w) for w in (4, 8, 16)], key=["n_cols"])(_softmax_kernel)

    def softmax(x: torch.Tensor) -> torch.Tensor:
        """Row-wise softmax of a 2-D tensor (any stride along rows, unit stride along columns).

        Args:
            x: (M, N) tensor of float32, float16 or bfloat16, N <= 32768.
        Returns:
            (M, N) tensor of x's dtype.
        """
        problem = check_shape(tuple(x.shape))
        if problem:
            raise ValueError(f"softmax: {problem}")
        if x.stride(-1) != 1:
            x = x.contiguous()
        m, n = x.shape
        y = torch.empty_like(x)
        block = triton.next_power_of_2(n)
        rows_per_program = 1 if x.is_cuda else 8  # the interpreter pays per program, not per row
        grid = (triton.cdiv(m, rows_per_program),)
        launch = tuned if x.is_cuda else _softmax_kernel
        launch[grid](x, y, m, n, x.stride(0), y.stride(0), BLOCK=block, ROWS_PER_PROGRAM=rows_per_program)
        return y

    return softmax


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(x, **params):
    import jax
    import jax.numpy as jnp

    return jax.nn.softmax(x.astype(jnp.float32), axis=-1).astype(x.dtype)


def jax_framework(x, **params):
    import jax

    return jax.nn.softmax(x, axis=-1)


@functools.cache
def pallas_kernel(interpret: bool = False):
    """Build the Pallas softmax; `interpret=True` runs it on the CPU."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    def _softmax_kernel(x_ref, o_ref, *, n_cols: int):
        x = x_ref[...].astype(jnp.float32)
        col = jax.lax.broadcasted_iota(jnp.int32, x.shape, 1)
        x = jnp.where(col < n_cols, x, -jnp.inf)  # ragged last block of columns
        x = x - jnp.max(x, axis=1, keepdims=True)
        e = jnp.exp(x)
        o_ref[...] = (e / jnp.sum(e, axis=1, keepdims=True)).astype(o_ref.dtype)

    @jax.jit
    def softmax(x):
        """Row-wise softmax of an (M, N) array, N <= 32768; returns x's dtype."""
        m, n = x.shape
        block_cols = pl.next_power_of_2(n)
        block_rows = 8 if interpret else 1
        # The GPU lowering masks neither the loads nor the stores of a block that overhangs the
        # array, so ragged inputs are padded to whole blocks (the kernel masks the padded columns);
        # power-of-two rows, the fast path, are not copied.
        mp = pl.cdiv(m, block_rows) * block_rows
        xp = jnp.pad(x, ((0, mp - m), (0, block_cols - n))) if (mp, block_cols) != (m, n) else x
        extra = {}
        if not interpret:
            from jax.experimental.pallas import triton as pltriton

            extra["compiler_params"] = pltriton.CompilerParams(num_warps=4 if block_cols <= 2048 else 8, num_stages=1)
        out = pl.pallas_call(
            functools.partial(_softmax_kernel, n_cols=n),
            out_shape=jax.ShapeDtypeStruct((mp, block_cols), x.dtype),
            grid=(mp // block_rows,),
            in_specs=[pl.BlockSpec((block_rows, block_cols), lambda i: (i, 0))],
            out_specs=pl.BlockSpec((block_rows, block_cols), lambda i: (i, 0)),
            interpret=interpret,
            **extra,
        )(xp)
        return out[:m, :n]

    return softmax

