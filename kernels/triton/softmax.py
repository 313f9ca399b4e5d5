"""The Triton softmax, forward and backward, and its torch.autograd wrapper.

Read after `kernels/softmax.py` (what it supports, counts, the PyTorch reference). Forward: each
program owns whole rows (one read, max, exp, sum, one write, in registers). Backward: with y the
forward's output and dy the incoming gradient, dx = y * (dy - sum(y * dy)) row by row; the
backward keeps y (not x), so it reads y and dy once and writes dx once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.registry import load_backend_module, load_module
from workbench.kernels.shapes import refuse

_op = load_module("softmax")
_rowwise = load_backend_module("_rowwise", "triton")


@triton.jit
def _softmax_fwd_kernel(x_ptr, y_ptr, n_rows, n_cols, stride_x, stride_y,
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


# The backward walks the rows as the forward does (boilerplate of a row-wise kernel: a loop over a
# program's rows with the same masked loads; a @triton.jit helper cannot hold a loop's body).
@triton.jit
def _softmax_bwd_kernel(y_ptr, dy_ptr, dx_ptr, n_rows, n_cols, stride_y, stride_dy, stride_dx,
                        BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    for r in range(ROWS_PER_PROGRAM):
        row = tl.program_id(0) * ROWS_PER_PROGRAM + r
        if row < n_rows:
            y = tl.load(y_ptr + row * stride_y + offs, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(dy_ptr + row * stride_dy + offs, mask=mask, other=0.0).to(tl.float32)
            dx = y * (dy - tl.sum(y * dy, axis=0))
            tl.store(dx_ptr + row * stride_dx + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


_fwd = _rowwise.RowKernel(_softmax_fwd_kernel)
_bwd = _rowwise.RowKernel(_softmax_bwd_kernel)


def softmax_fwd(x: torch.Tensor) -> torch.Tensor:
    x = x if x.stride(-1) == 1 else x.contiguous()
    return _rowwise.launch_rows(_fwd, torch.empty_like(x), [x])


def softmax_bwd(y: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    return _rowwise.launch_rows(_bwd, torch.empty_like(y), [y, dy])


class SoftmaxFunction(torch.autograd.Function):
    """Saves the output y; the backward needs nothing else."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = softmax_fwd(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return softmax_bwd(y, dy)


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of a 2-D tensor, differentiable with torch.autograd.

    Args:
        x: (M, N) tensor of float32, float16 or bfloat16, N <= 32768 (N <= 16384 with gradients).
    Returns:
        (M, N) tensor of x's dtype.
    Raises:
        InvalidRequest: a shape the kernel (or, when x requires grad, its backward) cannot take.
    """
    refuse(_op.NAME, _op.check_shape(tuple(x.shape)))
    if _rowwise.needs_grad(x):
        refuse(_op.NAME, _op.check_grad_shape(tuple(x.shape)), grad=True)
    return SoftmaxFunction.apply(x)
