"""What the row-wise operations (softmax, layer norm, RMS norm) share above the kernels: the shape
rules, the references' working dtype and the check of a norm's weight and bias.

Loaded by path like an operation (`workbench._kernels._rowwise`); the leading underscore keeps it
out of the kernel listing. It imports neither triton nor jax (torch only inside `work_dtype`), so
the operations that use it still load without a backend; `triton/_rowwise.py` and
`pallas/_rowwise.py` hold what the kernels of each backend share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from workbench.kernels.shapes import rowwise_grad_problem, rowwise_problem


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    """Why this shape cannot be run, or None when it can."""
    return rowwise_problem(shape)


def check_grad_shape(shape: tuple[int, ...], **params: object) -> str | None:
    """Why the backward cannot take this shape, or None when it can."""
    return rowwise_grad_problem(shape)


def work_dtype(x):
    """fp32 for the kernels' dtypes; fp64 stays fp64, so the gradients' reference is as exact as can be."""
    import torch

    return torch.promote_types(x.dtype, torch.float32)


def vectors_problem(n_cols: int, vectors: Mapping[str, Sequence[int]]) -> str | None:
    """Why a norm's (N,) vectors (weight, and bias for layer norm) do not fit rows of n_cols, or None."""
    if all(tuple(shape) == (n_cols,) for shape in vectors.values()):
        return None
    named = " and ".join(f"{name} {tuple(shape)}" for name, shape in vectors.items())
    return f"{named} must be ({n_cols},)"
