"""Row-wise softmax over the last axis of a 2-D array, forward and backward.

Reads top to bottom as: what it supports, its FLOP and byte counts (forward, then backward), the
references (PyTorch for Triton, `jax.numpy` for Pallas; their autograd is the gradients'
reference), the framework's own operation (the benchmark's baseline); the kernels themselves are
in `kernels/triton/softmax.py` and `kernels/pallas/softmax.py`, read in the same order. The
workbench loads this file by path under a private module name (`workbench._kernels.softmax`);
the kernel modules import triton and jax at their top and are loaded only when a kernel is first
built, so listing kernels never imports either (Triton's interpreter must be switched on before
triton is imported).

Each program owns whole rows: one read of a row, max, exp, sum and one write, all in registers,
so the kernel moves the fewest bytes possible (read once, write once). The backward reads y and
dy once and writes dx once: dx = y * (dy - sum(y * dy)).
"""

from __future__ import annotations

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import ROWWISE_BENCH_SHAPES, ROWWISE_CHECK_SHAPES

_rowwise = load_module("_rowwise")  # the shape rules and helpers softmax and the norms share

# What the registry reads (boilerplate: every kernel module declares these names, with its own values).
NAME = "softmax"
SUMMARY = "row-wise softmax (forward and backward) of an (M, N) array, fp32 arithmetic"
DTYPES = ("float32", "float16", "bfloat16")
CHECK_SHAPES = ROWWISE_CHECK_SHAPES  # non-powers of two, a single element, a single row
BENCH_SHAPES = ROWWISE_BENCH_SHAPES
FRAMEWORK = {"torch": "torch.softmax", "jax": "jax.nn.softmax"}
BOUND = "memory"
GRAD_NAMES = ("dx",)  # the gradients of the inputs, in order


check_shape = _rowwise.check_shape  # (M, N) with N <= 32768
check_grad_shape = _rowwise.check_grad_shape  # (M, N) with N <= 16384


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 5 * m * n  # max, subtract, exp, sum, divide


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return 2 * m * n * itemsize


def grad_flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 4 * m * n  # y * dy, sum, subtract, multiply by y


def grad_bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return 3 * m * n * itemsize  # read y and dy, write dx


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    """float32 numpy inputs; the harness casts them to the dtype under test and to the device."""
    return (rng.standard_normal(shape, dtype="float32") * 3.0,)


# -- PyTorch -----------------------------------------------------------------------------------
_work = _rowwise.work_dtype  # fp32, or fp64 for the gradients' reference


def torch_reference(x, **params):
    import torch

    return torch.softmax(x.to(_work(x)), dim=-1).to(x.dtype)


def torch_framework(x, **params):
    import torch

    return torch.softmax(x, dim=-1)


def triton_kernel():
    """The Triton softmax (`kernels/triton/softmax.py`, loaded here so TRITON_INTERPRET is honoured)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "triton").softmax


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(x, **params):
    import jax
    import jax.numpy as jnp

    return jax.nn.softmax(x.astype(jnp.float32), axis=-1).astype(x.dtype)


def jax_framework(x, **params):
    import jax

    return jax.nn.softmax(x, axis=-1)


def pallas_kernel(interpret: bool = False):
    """The Pallas softmax (`kernels/pallas/softmax.py`); `interpret=True` runs it on the CPU."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "pallas").build(interpret)
