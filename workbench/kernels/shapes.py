"""Shape rules the built-in kernel modules share (they import this; the folder itself is not a package)."""

from __future__ import annotations

from collections.abc import Sequence

# Row-wise kernels (softmax, the norms): non-powers of two, a single element, a single row.
ROWWISE_CHECK_SHAPES = {
    "cpu": [(1, 1), (3, 17), (1, 1000), (65, 130), (33, 513)],
    "gpu": [(1, 1), (3, 17), (1823, 781), (4096, 8192)],
}
ROWWISE_BENCH_SHAPES = {"cpu": [(65, 130)], "gpu": [(8192, 8192)]}
# Rows wider than this do not fit one program's registers.
ROWWISE_MAX_COLS = 32768


def dims_problem(shape: Sequence[int], names: Sequence[str]) -> str | None:
    """Why `shape` is not a shape of len(names) positive dimensions, or None."""
    if len(shape) != len(names):
        return f"expected a shape ({', '.join(names)}), got {len(shape)}-D {tuple(shape)}"
    if min(shape) < 1:
        return f"every dimension must be >= 1, got {tuple(shape)}"
    return None


def rowwise_problem(shape: Sequence[int], max_cols: int = ROWWISE_MAX_COLS) -> str | None:
    """Why a row-wise kernel cannot take `shape` (rows, cols), or None."""
    problem = dims_problem(shape, ("rows", "cols"))
    if problem is None and shape[1] > max_cols:
        return f"rows of {shape[1]} columns exceed the {max_cols} a program holds in registers"
    return problem

# The backward of a row-wise kernel holds two rows (the input and the incoming gradient) and the
# weight in registers, twice the forward's working set, so it takes rows half as wide.
ROWWISE_GRAD_MAX_COLS = ROWWISE_MAX_COLS // 2


def rowwise_grad_problem(shape: Sequence[int]) -> str | None:
    """Why the backward of a row-wise kernel cannot take `shape` (rows, cols), or None."""
    problem = dims_problem(shape, ("rows", "cols"))
    if problem is None and shape[1] > ROWWISE_GRAD_MAX_COLS:
        return (f"gradients of rows of {shape[1]} columns are not supported: the backward holds a row and its "
                f"gradient in registers, up to {ROWWISE_GRAD_MAX_COLS} columns")
    return problem


def refuse(kernel: str, problem: str | None, *, grad: bool = False) -> None:
    """Raise InvalidRequest naming the kernel and the problem (before any kernel runs); None passes."""
    if problem is None:
        return
    from workbench.errors import InvalidRequest

    raise InvalidRequest(f"{kernel}{' gradient' if grad else ''}: {problem}")
