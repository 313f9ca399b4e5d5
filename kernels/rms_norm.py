"""RMS normalization over the last axis: y = x / sqrt(mean(x^2) + eps) * w, forward and backward.

Reads top to bottom as: what it supports, FLOP and byte counts (forward, then backward),
references (their autograd is the gradients' reference), the framework's operation; the kernels
are in `kernels/triton/rms_norm.py` and `kernels/pallas/rms_norm.py`, read in the same order.
Loaded by path by the workbench; the kernel modules (which import triton and jax) only when a
kernel is built. One program per row, held in registers: x is read once and y written once; w
stays in L2. The backward (dx, dw) recomputes rstd from x and reduces dw in two stages
(per-program fp32 partial sums, then a column sum): it reads x and dy once and writes dx once.
"""

from __future__ import annotations

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import ROWWISE_BENCH_SHAPES, ROWWISE_CHECK_SHAPES

_rowwise = load_module("_rowwise")  # the shape rules and helpers softmax and the norms share

# What the registry reads (boilerplate: every kernel module declares these names, with its own values).
NAME = "rms_norm"
SUMMARY = "RMS norm forward and backward of an (M, N) array with weight of (N,), eps=1e-6"
DTYPES = ("float32", "float16", "bfloat16")
EPS = 1e-6
CHECK_SHAPES = ROWWISE_CHECK_SHAPES  # non-powers of two, a single element, a single row
BENCH_SHAPES = ROWWISE_BENCH_SHAPES
FRAMEWORK = {"torch": "torch.nn.functional.rms_norm", "jax": "jax.numpy (mean of squares, rsqrt)"}
BOUND = "memory"
GRAD_NAMES = ("dx", "dw")  # the gradients of the inputs, in order


check_shape = _rowwise.check_shape  # (M, N) with N <= 32768
check_grad_shape = _rowwise.check_grad_shape  # (M, N) with N <= 16384


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 4 * m * n  # square, sum, multiply by rstd, weight


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return (2 * m * n + n) * itemsize


def grad_flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 8 * m * n  # xhat, w * dy, row sum, dx, dw accumulation


def grad_bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return (3 * m * n + 2 * n) * itemsize  # read x and dy, write dx; w read, dw written


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    m, n = shape
    return rng.standard_normal((m, n), dtype="float32") * 2.0, rng.standard_normal((n,), dtype="float32")


# -- PyTorch -----------------------------------------------------------------------------------
_work = _rowwise.work_dtype  # fp32, or fp64 for the gradients' reference


def torch_reference(x, w, **params):
    import torch.nn.functional as F

    return F.rms_norm(x.to(_work(x)), (x.shape[-1],), w.to(_work(x)), EPS).to(x.dtype)


def torch_framework(x, w, **params):
    import torch.nn.functional as F

    return F.rms_norm(x, (x.shape[-1],), w, EPS)


def triton_kernel():
    """The Triton kernel (`kernels/triton/rms_norm.py`, loaded here so TRITON_INTERPRET is honoured)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "triton").rms_norm


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(x, w, **params):
    import jax.numpy as jnp

    xf = x.astype(jnp.float32)
    rstd = 1.0 / jnp.sqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + EPS)
    return (xf * rstd * w.astype(jnp.float32)).astype(x.dtype)


def jax_framework(x, w, **params):
    """What a JAX user writes (XLA fuses it); the harness jits it."""
    import jax.numpy as jnp

    ms = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return (x * jnp.reciprocal(jnp.sqrt(ms + EPS)) * w).astype(x.dtype)


def pallas_kernel(interpret: bool = False):
    """The Pallas kernel (`kernels/pallas/rms_norm.py`); `interpret=True` runs it on the CPU."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "pallas").build(interpret)
