"""Layer normalization over the last axis: y = (x - mean) / sqrt(var + eps) * w + b, forward and backward.

Reads top to bottom as: what it supports, FLOP and byte counts (forward, then backward),
references (their autograd is the gradients' reference), the framework's operation; the kernels
are in `kernels/triton/layer_norm.py` and `kernels/pallas/layer_norm.py`, read in the same order.
Loaded by path by the workbench; the kernel modules (which import triton and jax) only when a
kernel is built.

Each program owns whole rows held in registers: one read of x, one write of y, and w and b which
stay in L2 across rows, so the bytes moved are those of reading x and writing y. Statistics are
computed in fp32 with the two-pass formula on the registers (no E[x^2] - E[x]^2 cancellation).
The backward (dx, dw, db) recomputes each row's statistics from x and reduces dw and db in two
stages (per-program fp32 partial sums, then a column sum): it reads x and dy once, writes dx once.
"""

from __future__ import annotations

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import ROWWISE_BENCH_SHAPES, ROWWISE_CHECK_SHAPES

_rowwise = load_module("_rowwise")  # the shape rules and helpers softmax and the norms share

# What the registry reads (boilerplate: every kernel module declares these names, with its own values).
NAME = "layer_norm"
SUMMARY = "layer norm forward and backward of an (M, N) array with weight and bias of (N,), eps=1e-5"
DTYPES = ("float32", "float16", "bfloat16")
EPS = 1e-5
CHECK_SHAPES = ROWWISE_CHECK_SHAPES  # non-powers of two, a single element, a single row
BENCH_SHAPES = ROWWISE_BENCH_SHAPES
FRAMEWORK = {"torch": "torch.nn.functional.layer_norm", "jax": "jax.numpy (mean, var, rsqrt)"}
BOUND = "memory"
GRAD_NAMES = ("dx", "dw", "db")  # the gradients of the inputs, in order


check_shape = _rowwise.check_shape  # (M, N) with N <= 32768
check_grad_shape = _rowwise.check_grad_shape  # (M, N) with N <= 16384


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 8 * m * n  # sum, subtract, square, sum, multiply by rstd, weight, bias (+ rounding)


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return (2 * m * n + 2 * n) * itemsize


def grad_flops(shape: tuple[int, ...], **params: object) -> int:
    m, n = shape
    return 12 * m * n  # xhat, w * dy, two row sums, dx, dw and db accumulation


def grad_bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n = shape
    return (3 * m * n + 3 * n) * itemsize  # read x and dy, write dx; w read, dw and db written


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    m, n = shape
    x = rng.standard_normal((m, n), dtype="float32") * 2.0 + 0.5
    w = rng.standard_normal((n,), dtype="float32")
    b = rng.standard_normal((n,), dtype="float32")
    return x, w, b


# -- PyTorch -----------------------------------------------------------------------------------
_work = _rowwise.work_dtype  # fp32, or fp64 for the gradients' reference


def torch_reference(x, w, b, **params):
    import torch.nn.functional as F

    return F.layer_norm(x.to(_work(x)), (x.shape[-1],), w.to(_work(x)), b.to(_work(x)), EPS).to(x.dtype)


def torch_framework(x, w, b, **params):
    import torch.nn.functional as F

    return F.layer_norm(x, (x.shape[-1],), w, b, EPS)


def triton_kernel():
    """The Triton kernel (`kernels/triton/layer_norm.py`, loaded here so TRITON_INTERPRET is honoured)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "triton").layer_norm


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


def pallas_kernel(interpret: bool = False):
    """The Pallas kernel (`kernels/pallas/layer_norm.py`); `interpret=True` runs it on the CPU."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "pallas").build(interpret)
