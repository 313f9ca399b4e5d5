"""What the row-wise Triton kernels (softmax, layer norm, RMS norm) share: the launch geometry and
the second stage of the weight gradients' reduction.

The weight gradients (dw, db) of a norm are sums over every row. Atomics would make them
nondeterministic, so they are reduced in two stages: each program of the backward owns a run of
rows and writes its partial sums (fp32) to one row of a (programs, N) buffer; a second kernel sums
that buffer's columns.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

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
