"""Layer normalization over the last axis (forward): y = (x - mean) / sqrt(var + eps) * w + b.

Reads top to bottom as: what it supports, FLOP and byte counts, references, the framework's
operation, the Triton kernel, the Pallas kernel. Loaded by path by the workbench; triton and jax
are imported only when a kernel is built.

Each program owns whole rows held in registers: one read of x, one write of y, and w and b which
stay in L2 across rows, so the bytes moved are those of reading x and writing y. Statistics are
computed in fp32 with the two-pass formula on the registers (no E[x^2] - E[x]^2 cancellation).
"""

from __future__ import annotations

import functools

from workbench.kernels.shapes import (
    ROWWISE_BENCH_SHAPES,
    ROWWISE_CHECK_SHAPES,
    rowwise_problem,
)

NAME = "layer_norm"
SUMMARY = "layer norm forward of an (M, N) array with weight and bias of (N,), eps=1e-5"
DTYPES = ("float32", "float16", "bfloat16")
EPS = 1e-5
CHECK_SHAPES = ROWWISE_CHECK_SHAPES  # non-powers of two, a single element, a single row
BENCH_SHAPES = ROWWISE_BENCH_SHAPES
VARIANTS: tuple[dict, ...] = ({},)
TOLERANCES: dict[str, tuple[float, float, str]] = {}
FRAMEWORK = {"torch": "torch.nn.functional.layer_norm", "jax": "jax.numpy (mean, var, rsqrt)"}
BOUND = "memory"


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    """Why this shape cannot be run, or None when it can."""
    return rowwise_problem(shape)


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 8 * m * n  # sum, subtract, square, sum, multiply by rstd, weight, bias (+ rounding)


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return (2 * m * n + 2 * n) * itemsize


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    m, n = shape
    x = rng.standard_normal((m, n), dtype="float32") * 2.0 + 0.5
    w = rng.standard_normal((n,), dtype="float32")
    b = rng.standard_normal((n,), dtype="float32")
    return x, w, b


# -- PyTorch -----------------------------------------------------------------------------------
def torch_reference(x, w, b, **params):
    import torch.nn.functional as F

    return F.layer_norm(x.float(), (x.shape[-1],), w.float(), b.float(), EPS).to(x.dtype)


def torch_framework(x, w, b, **params):
    import torch.nn.functional as F

    return F.layer_norm(x, (x.shape[-1],), w, b, EPS)


@functools.cache
def triton_kernel():
    import torch
    import triton
    import triton.language as tl

    # Triton resolves the names a kernel uses in its module's globals, not in this function's scope.
    globals().update(triton=triton, tl=tl)

    @triton.jit
    def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_rows, n_cols, stride_x, stride_y, eps,
                           BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        mask = offs < n_cols
        w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        for r in range(ROWS_PER_PROGRAM):
            row = tl.program_id(0) * ROWS_PER_PROGRAM + r
            if row < n_rows:
                x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
                mean = tl.sum(x, axis=0) / n_cols
                xc = tl.where(mask, x - mean, 0.0)
                var = tl.sum(xc * xc, axis=0) / n_cols
                rstd = 1.0 / tl.sqrt(var + eps)
                y = xc * rstd * w + b
                tl.store(y_ptr + row * stride_y + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    # On a GPU the warps per program are tuned per row length; the interpreter ignores them.
    tuned = triton.autotune(configs=[triton.Config({}, num_warps=w) for w in (4, 8, 16)], key=["n_cols"])(_layer_norm_kernel)

    def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
        """Layer norm over the last axis.

        Args:
            x: (M, N) tensor, N <= 32768; w, b: (N,) tensors of x's dtype.
        Returns:
            (M, N) tensor of x's dtype.
        """
        problem = check_shape(tuple(x.shape))
        if problem:
            raise ValueError(f"layer_norm: {problem}")
        if tuple(w.shape) != (x.shape[1],) or tuple(b.shape) != (x.shape[1],):
            raise ValueError(f"layer_norm: weight {tuple(w.shape)} and bias {tuple(b.shape)} must be ({x.shape[1]},)")
        x = x if x.stride(-1) == 1 else x.contiguous()
        w, b = w.contiguous(), b.contiguous()
        m, n = x.shape
        y = torch.empty_like(x)
        block = triton.next_power_of_2(n)
        rows_per_program = 1 if x.is_cuda else 8
        launch = tuned if x.is_cuda else _layer_norm_kernel
        launch[(triton.cdiv(m, rows_per_program),)](
            x, w, b, y, m, n, x.stride(0), y.stride(0), eps,
            BLOCK=block, ROWS_PER_PROGRAM=rows_per_program)
        return y

    return layer_norm


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(x, w, b, **params):
    import jax.numpy as jnp

    xf = x.astype(jnp.float32)
    mean = xf.mean(axis=-1, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((xf - mean) / jnp.sqrt(var + EPS) * w.astype(jnp.float32) + b.astype(jnp.float32)).astype(x.dtype)


def jax_framework(x, w, b, **params):
    """What a JAX user writes (XLA fuses it); the harness jits it."""
    import jax.numpy as jnp

    mean = x.mean(axis=-1, keepdims=True, dtype=jnp.float32)
    var = x.var(axis=-1, keepdims=True, dtype=jnp.float32)
    return ((x - mean) * jnp.reciprocal(jnp.sqrt(var + EPS)) * w + b).astype(x.dtype)


@functools.cache
def pallas_kernel(interpret: bool = False):
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    def _layer_norm_kernel(x_ref, w_ref, b_ref, o_ref, *, n_cols: int):
        x = x_ref[...].astype(jnp.float32)
        col = jax.lax.broadcasted_iota(jnp.int32, x.shape, 1)
        valid = col < n_cols
        x = jnp.where(valid, x, 0.0)
        mean = jnp.sum(x, axis=1, keepdims=True) / n_cols
        xc = jnp.where(valid, x - mean, 0.0)
        var = jnp.sum(xc * xc, axis=1, keepdims=True) / n_cols
        rstd = 1.0 / jnp.sqrt(var + EPS)
        w = w_ref[...].astype(jnp.float32)[None, :]
        b = b_ref[...].astype(jnp.float32)[None, :]
        o_ref[...] = (xc * rstd * w + b).astype(o_ref.dtype)

    @jax.jit
    def layer_norm(x, w, b):
        """Layer norm over the last axis of an (M, N) array; w, b of (N,)."""
        m, n = x.shape
        block_cols = pl.next_power_of_2(n)
        block_rows = 8 if interpret else 1
        # The GPU lowering masks neither the loads nor the stores of a block that overhangs the
        # array, so ragged inputs are padded to whole blocks (the kernel masks the padded columns);
        # power-of-two rows, the fast path, are not copied.
        mp = pl.cdiv(m, block_rows) * block_rows
        xp = jnp.pad(x, ((0, mp - m), (0, block_cols - n))) if (mp, block_cols) != (m, n) else x
        wp = jnp.pad(w, (0, block_cols - n)) if block_cols != n else w
        bp = jnp.pad(b, (0, block_cols - n)) if block_cols != n else b
        extra = {}
        if not interpret:
            from jax.experimental.pallas import triton as pltriton

            extra["compiler_params"] = pltriton.CompilerParams(num_warps=4 if block_cols <= 2048 else 8, num_stages=1)
        out = pl.pallas_call(
            functools.partial(_layer_norm_kernel, n_cols=n),
            out_shape=jax.ShapeDtypeStruct((mp, block_cols), x.dtype),
            grid=(mp // block_rows,),
            in_specs=[
                pl.BlockSpec((block_rows, block_cols), lambda i: (i, 0)),
                pl.BlockSpec((block_cols,), lambda i: (0,)),
                pl.BlockSpec((block_cols,), lambda i: (0,)),
            ],
            out_specs=pl.BlockSpec((block_rows, block_cols), lambda i: (i, 0)),
            interpret=interpret,
            **extra,
        )(xp, wp, bp)
        return out[:m, :n]

    return layer_norm
