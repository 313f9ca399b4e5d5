"""What the row-wise Triton kernels (softmax, layer norm, RMS norm) share: the launch geometry, the
launches themselves, the second stage of the weight gradients' reduction, and the norms' autograd
Function and public wrapper (layer norm and RMS norm differ only in their kernels and the bias).

Every row-wise kernel takes its arguments in one order, so one launch serves them all:
forward `(*rows, *vectors, out, n_rows, n_cols, *row strides, out stride, *scalars, BLOCK,
ROWS_PER_PROGRAM)`, a norm's backward `(x, w, dy, dx, *partials, n_rows, n_cols, stride_x,
stride_dy, stride_dx, eps, rows_per_program, BLOCK)`.

The weight gradients (dw, db) of a norm are sums over every row. Atomics would make them
nondeterministic, so they are reduced in two stages: each program of the backward owns a run of
rows and writes its partial sums (fp32) to one row of a (programs, N) buffer; a second kernel sums
that buffer's columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
import triton
import triton.language as tl

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import refuse

_shared = load_module("_rowwise")

# The interpreter pays per program, not per row, so it takes rows in runs of this many.
INTERPRETER_ROWS_PER_PROGRAM = 8


def rows_per_program(x: torch.Tensor) -> int:
    """Forward kernels: one row per program on a GPU, a run of rows in the interpreter."""
    return 1 if x.is_cuda else INTERPRETER_ROWS_PER_PROGRAM


def backward_programs(x: torch.Tensor) -> tuple[int, int]:
    """(programs, rows per program) of a backward that reduces weight gradients in two stages.

    On a GPU a few programs per SM, each a contiguous run of rows, so that the partial sums the
    second stage reads are small next to x and dy; in the interpreter runs of 8 rows.
    """
    n_rows = x.shape[0]
    if x.is_cuda:
        programs = min(n_rows, 4 * torch.cuda.get_device_properties(x.device).multi_processor_count)
    else:
        programs = triton.cdiv(n_rows, INTERPRETER_ROWS_PER_PROGRAM)
    per_program = triton.cdiv(n_rows, programs)
    return triton.cdiv(n_rows, per_program), per_program


@triton.jit
def _column_sum_kernel(part_ptr, out_ptr, n_parts, n_cols, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, n_parts, BLOCK_P):
        parts = start + tl.arange(0, BLOCK_P)
        mask = (parts[:, None] < n_parts) & (cols[None, :] < n_cols)
        acc += tl.sum(tl.load(part_ptr + parts[:, None] * n_cols + cols[None, :], mask=mask, other=0.0), axis=0)
    tl.store(out_ptr + cols, acc.to(out_ptr.dtype.element_ty), mask=cols < n_cols)


def column_sum(partials: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Stage two: the column sums of a (programs, N) fp32 buffer, as an (N,) tensor of `dtype`."""
    n_parts, n_cols = partials.shape
    out = torch.empty(n_cols, dtype=dtype, device=partials.device)
    block_n = min(128, triton.next_power_of_2(n_cols))
    block_p = min(32, triton.next_power_of_2(n_parts))
    _column_sum_kernel[(triton.cdiv(n_cols, block_n),)](partials, out, n_parts, n_cols, BLOCK_P=block_p, BLOCK_N=block_n)
    return out


def needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# On a GPU the warps per program are tuned per row length; the interpreter ignores them.
_WARPS = [triton.Config({}, num_warps=w) for w in (4, 8, 16)]


class RowKernel:
    """A row-wise kernel and its autotuned twin: the GPU launches the tuned one, the interpreter the plain one."""

    def __init__(self, kernel: triton.JITFunction) -> None:
        self.kernel = kernel
        self.tuned = triton.autotune(configs=_WARPS, key=["n_cols"])(kernel)

    def on(self, t: torch.Tensor):
        """The kernel to launch for tensors on t's device."""
        return self.tuned if t.is_cuda else self.kernel


def launch_rows(kernel: RowKernel, out: torch.Tensor, rows: Sequence[torch.Tensor],
                vectors: Sequence[torch.Tensor] = (), scalars: Sequence[float] = ()) -> torch.Tensor:
    """One forward launch over (M, N) tensors with unit stride along columns; returns `out`."""
    m, n = out.shape
    per_program = rows_per_program(out)
    kernel.on(out)[(triton.cdiv(m, per_program),)](
        *rows, *vectors, out, m, n, *(t.stride(0) for t in (*rows, out)), *scalars,
        BLOCK=triton.next_power_of_2(n), ROWS_PER_PROGRAM=per_program)
    return out


@dataclass(frozen=True)
class NormKernels:
    """One norm's operation module (`kernels/<op>.py`) and its forward and backward kernels."""

    op: ModuleType
    fwd: RowKernel
    bwd: RowKernel


def norm_fwd(kernels: NormKernels, x: torch.Tensor, w: torch.Tensor, *bias: torch.Tensor, eps: float) -> torch.Tensor:
    return launch_rows(kernels.fwd, torch.empty_like(x), [x], [w, *bias], [eps])


def norm_bwd(kernels: NormKernels, x: torch.Tensor, w: torch.Tensor, dy: torch.Tensor, eps: float
             ) -> tuple[torch.Tensor, ...]:
    """(dx, dw[, db]): dx row by row, the weight gradients in two stages (partial sums, column sums)."""
    m, n = x.shape
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    dx = torch.empty_like(x)
    programs, per_program = backward_programs(x)
    partials = [torch.empty((programs, n), dtype=torch.float32, device=x.device)
                for _ in kernels.op.GRAD_NAMES[1:]]  # one buffer per weight gradient (dw, db)
    kernels.bwd.on(x)[(programs,)](x, w, dy, dx, *partials, m, n, x.stride(0), dy.stride(0), dx.stride(0), eps,
                                   per_program, BLOCK=triton.next_power_of_2(n))
    return (dx, *(column_sum(p, w.dtype) for p in partials))


class NormFunction(torch.autograd.Function):
    """Saves x and w; the backward recomputes each row's statistics from x, which it reads anyway."""

    @staticmethod
    def forward(ctx, kernels: NormKernels, eps: float, x: torch.Tensor, w: torch.Tensor, *bias: torch.Tensor):
        ctx.save_for_backward(x, w)
        ctx.kernels, ctx.eps = kernels, eps
        return norm_fwd(kernels, x, w, *bias, eps=eps)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w = ctx.saved_tensors
        return (None, None, *norm_bwd(ctx.kernels, x, w, dy, ctx.eps))


def norm(kernels: NormKernels, x: torch.Tensor, vectors: Mapping[str, torch.Tensor], eps: float) -> torch.Tensor:
    """A norm's public wrapper: refuse what its kernels cannot take, then run them under autograd.

    `vectors` names the (N,) inputs in order: {"weight": w} or {"weight": w, "bias": b}.
    """
    op = kernels.op
    refuse(op.NAME, op.check_shape(tuple(x.shape)))
    refuse(op.NAME, _shared.vectors_problem(x.shape[1], {k: v.shape for k, v in vectors.items()}))
    if needs_grad(x, *vectors.values()):
        refuse(op.NAME, op.check_grad_shape(tuple(x.shape)), grad=True)
    x = x if x.stride(-1) == 1 else x.contiguous()
    return NormFunction.apply(kernels, eps, x, *(v.contiguous() for v in vectors.values()))
