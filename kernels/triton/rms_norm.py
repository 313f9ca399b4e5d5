"""The Triton RMS norm, forward and backward (dx, dw), and its torch.autograd wrapper.

Read after `kernels/rms_norm.py`. Forward: one row per program, in registers. Backward: each
program owns a contiguous run of rows; for a row, with xhat = x * rstd and g = w * dy,
    dx = (g - xhat * mean(xhat * g)) * rstd,
and it accumulates dy * xhat (dw) in fp32 registers, written as one row of partial sums that a
second kernel sums (see `_rowwise.py`). rstd is recomputed from x, which the backward reads anyway.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.registry import load_backend_module, load_module
from workbench.kernels.shapes import refuse

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


# On a GPU the warps per program are tuned per row length; the interpreter ignores them.
_WARPS = [triton.Config({}, num_warps=w) for w in (4, 8, 16)]
_rms_norm_fwd_tuned = triton.autotune(configs=_WARPS, key=["n_cols"])(_rms_norm_fwd_kernel)
_rms_norm_bwd_tuned = triton.autotune(configs=_WARPS, key=["n_cols"])(_rms_norm_bwd_kernel)


def rms_norm_fwd(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    m, n = x.shape
    y = torch.empty_like(x)
    per_program = _rowwise.rows_per_program(x)
    launch = _rms_norm_fwd_tuned if x.is_cuda else _rms_norm_fwd_kernel
    launch[(triton.cdiv(m, per_program),)](x, w, y, m, n, x.stride(0), y.stride(0), eps,
                                           BLOCK=triton.next_power_of_2(n), ROWS_PER_PROGRAM=per_program)
    return y


def rms_norm_bwd(x: torch.Tensor, w: torch.Tensor, dy: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    m, n = x.shape
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    dx = torch.empty_like(x)
    programs, per_program = _rowwise.backward_programs(x)
    dw_part = torch.empty((programs, n), dtype=torch.float32, device=x.device)
    launch = _rms_norm_bwd_tuned if x.is_cuda else _rms_norm_bwd_kernel
    launch[(programs,)](x, w, dy, dx, dw_part, m, n, x.stride(0), dy.stride(0), dx.stride(0), eps,
                        per_program, BLOCK=triton.next_power_of_2(n))
    return dx, _rowwise.column_sum(dw_part, w.dtype)


class RMSNormFunction(torch.autograd.Function):
    """Saves x and w; the backward recomputes each row's rstd."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.eps = eps
        return rms_norm_fwd(x, w, eps)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w = ctx.saved_tensors
        dx, dw = rms_norm_bwd(x, w, dy, ctx.eps)
        return dx, dw, None


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float = _op.EPS) -> torch.Tensor:
    """RMS norm over the last axis, differentiable with torch.autograd (dx, dw).

    Args:
        x: (M, N) tensor, N <= 32768 (16384 with gradients); w: (N,) tensor of x's dtype.
    Returns:
        (M, N) tensor of x's dtype.
    Raises:
        InvalidRequest: a shape the kernel (or, when an input requires grad, its backward) cannot take.
    """
    refuse(_op.NAME, _op.check_shape(tuple(x.shape)))
    if tuple(w.shape) != (x.shape[1],):
        refuse(_op.NAME, f"weight {tuple(w.shape)} must be ({x.shape[1]},)")
    if _rowwise.needs_grad(x, w):
        refuse(_op.NAME, _op.check_grad_shape(tuple(x.shape)), grad=True)
    x = x if x.stride(-1) == 1 else x.contiguous()
    return RMSNormFunction.apply(x, w.contiguous(), eps)
