"""The Triton RMS norm, forward and backward (dx, dw), and its torch.autograd wrapper.

Read after `kernels/rms_norm.py`. Forward: one row per program, in registers. Backward: each
program owns a contiguous run of rows; for a row, with xhat = x * rstd and g = w * dy,
    dx = (g - xhat * mean(xhat * g)) * rstd,
and it accumulates dy * xhat (dw) in fp32 registers, written as one row of partial sums that a
second kernel sums. rstd is recomputed from x, which the backward reads anyway. The launches, the
autograd Function and the checks of the wrapper are those of every norm, in `_rowwise.py`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.registry import load_backend_module, load_module

_op = load_module("rms_norm")
_rowwise = load_backend_module("_rowwise", "triton")


@triton.jit
def _rms_norm_fwd_kernel(x_ptr, w_ptr, y_ptr, n_rows, n_cols, stride_x, stride_y, eps,
                         BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    for r in range(ROWS_PER_PROGRAM):
        row = tl.program_id(0) * ROWS_PER_PROGRAM + r
        if row < n_rows:
            x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
            rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
            tl.store(y_ptr + row * stride_y + offs, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


# Its prologue is layer norm's (boilerplate of a norm backward: the program's columns, the weight,
# fp32 accumulators, its run of rows); the statistics and gradients in between differ.
@triton.jit
def _rms_norm_bwd_kernel(x_ptr, w_ptr, dy_ptr, dx_ptr, dw_part_ptr, n_rows, n_cols,
                         stride_x, stride_dy, stride_dx, eps, rows_per_program, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK,), dtype=tl.float32)
    first = pid * rows_per_program
    for row in range(first, tl.minimum(first + rows_per_program, n_rows)):
        x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + row * stride_dy + offs, mask=mask, other=0.0).to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        xhat = x * rstd
        g = w * dy
        dx = (g - xhat * (tl.sum(xhat * g, axis=0) / n_cols)) * rstd
        tl.store(dx_ptr + row * stride_dx + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        dw += dy * xhat
    tl.store(dw_part_ptr + pid * n_cols + offs, dw, mask=mask)


_KERNELS = _rowwise.NormKernels(_op, _rowwise.RowKernel(_rms_norm_fwd_kernel), _rowwise.RowKernel(_rms_norm_bwd_kernel))


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float = _op.EPS) -> torch.Tensor:
    """RMS norm over the last axis, differentiable with torch.autograd (dx, dw).

    Args:
        x: (M, N) tensor, N <= 32768 (16384 with gradients); w: (N,) tensor of x's dtype.
    Returns:
        (M, N) tensor of x's dtype.
    Raises:
        InvalidRequest: a shape the kernel (or, when an input requires grad, its backward) cannot take.
    """
    return _rowwise.norm(_KERNELS, x, {"weight": w}, eps)
