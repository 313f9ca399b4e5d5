"""Attention, flash-attention style, forward and backward: O = softmax(Q K^T / sqrt(D) [+ causal mask]) V.

Q, K, V and O are (B, H, S, D), D in {16, 32, 64, 128}; `causal` is a variant of every shape.
Reads top to bottom as: what it supports, FLOP and byte counts (forward, then backward),
references (their autograd is the gradients' reference), the framework's operation; the kernels
are in `kernels/triton/attention.py` and `kernels/pallas/attention.py`, read in the same order.
Loaded by path by the workbench; the kernel modules (which import triton and jax) only when a
kernel is built.

Each program owns BLOCK_M queries of one (batch, head) and streams the keys and values past them
in blocks of BLOCK_N with an online softmax (running max and sum in fp32), so the S x S scores
never reach device memory. The probabilities are rounded to the input dtype before the P V
product, as FlashAttention does, so the tensor cores do that product too. Causal attention skips
the blocks above the diagonal and masks only the diagonal block. The forward saves each query's log-sum-exp; the backward (FlashAttention-2's)
recomputes the probabilities blockwise from it, so it too never holds S x S scores.
"""

from __future__ import annotations

import math

from workbench.kernels.shapes import dims_problem

# What the registry reads (boilerplate: every kernel module declares these names, with its own values).
NAME = "attention"
SUMMARY = "attention forward and backward (B, H, S, D), causal or not, D in 16/32/64/128, online softmax"
DTYPES = ("float32", "float16", "bfloat16")
HEAD_DIMS = (16, 32, 64, 128)
CHECK_SHAPES = {
    "cpu": [(1, 1, 1, 64), (1, 2, 77, 64), (1, 1, 45, 128)],
    "gpu": [(1, 1, 1, 64), (1, 2, 77, 64), (2, 3, 300, 128), (1, 2, 1024, 128)],
}
BENCH_SHAPES = {"cpu": [(1, 2, 77, 64)], "gpu": [(4, 32, 4096, 128)]}
VARIANTS: tuple[dict, ...] = ({"causal": False}, {"causal": True})
BENCH_VARIANTS: tuple[dict, ...] = ({"causal": True}, {"causal": False})
TOLERANCES: dict[str, tuple[float, float, str]] = {
    "float16": (1e-3, 1e-3, ("the probabilities are rounded to fp16 before the P V product (as FlashAttention "
                            "does), an error of up to 2^-11 per weight in outputs that average values "
                            "of both signs: atol 1e-3 instead of 1e-5")),
    "bfloat16": (1.6e-2, 8e-3, ("the probabilities are rounded to bf16 before the P V product (as FlashAttention "
                               "does): atol 8e-3 instead of 1e-5")),
}
FRAMEWORK = {"torch": "torch.nn.functional.scaled_dot_product_attention (flash backend)",
             "jax": "jax.nn.dot_product_attention"}
BOUND = "compute"
GRAD_NAMES = ("dq", "dk", "dv")  # the gradients of the inputs, in order


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    problem = dims_problem(shape, ("batch", "heads", "seq", "head_dim"))
    if problem:
        return problem
    if shape[3] not in HEAD_DIMS:
        return f"head_dim {shape[3]} is not supported; supported: {', '.join(map(str, HEAD_DIMS))}"
    return None


def inputs_problem(q, k, v) -> str | None:
    """Why q, k, v (torch tensors or jax arrays) cannot be run together, or None."""
    if not (q.shape == k.shape == v.shape):
        return f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} must have one shape"
    if not (q.dtype == k.dtype == v.dtype):
        return f"dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}"
    return check_shape(tuple(q.shape))


def check_grad_shape(shape: tuple[int, ...], **params: object) -> str | None:
    """The backward takes every shape the forward does."""
    return check_shape(shape)


def flops(shape: tuple[int, ...], causal: bool = False, **params: object) -> int:
    b, h, s, d = shape
    full = 4 * b * h * s * s * d  # Q K^T and P V, 2 flops per multiply-add each
    return full // 2 if causal else full


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    b, h, s, d = shape
    return 4 * b * h * s * d * itemsize


def grad_flops(shape: tuple[int, ...], causal: bool = False, **params: object) -> int:
    """The FlashAttention-2 backward: Q K^T recomputed, dO V^T, dV, dK and dQ: 5 matmuls of S x S x D."""
    b, h, s, d = shape
    full = 10 * b * h * s * s * d
    return full // 2 if causal else full


def grad_bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    """Read Q, K, V, O, dO; write dQ, dK, dV (the fp32 log-sum-exp and delta are O(S), left out)."""
    b, h, s, d = shape
    return 8 * b * h * s * d * itemsize


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    return tuple(rng.standard_normal(shape, dtype="float32") for _ in range(3))


# -- PyTorch -----------------------------------------------------------------------------------
def torch_reference(q, k, v, causal: bool = False, **params):
    """The textbook formula in fp64 on the CPU (fp32 without tf32 on a GPU)."""
    import torch

    work = torch.float32 if q.is_cuda else torch.float64
    qf, kf, vf = (t.to(work) for t in (q, k, v))
    scores = torch.matmul(qf, kf.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        s = q.shape[-2]
        keep = torch.ones(s, s, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), vf).to(q.dtype)


def torch_framework(q, k, v, causal: bool = False, **params):
    import torch
    import torch.nn.functional as F

    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def triton_kernel():
    """The Triton kernel (`kernels/triton/attention.py`, loaded here so TRITON_INTERPRET is honoured)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "triton").attention


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(q, k, v, causal: bool = False, **params):
    import jax
    import jax.numpy as jnp

    qf, kf, vf = (t.astype(jnp.float32) for t in (q, k, v))
    scores = jnp.einsum("bhqd,bhkd->bhqk", qf, kf, precision=jax.lax.Precision.HIGHEST) / math.sqrt(q.shape[-1])
    if causal:
        s = q.shape[-2]
        scores = jnp.where(jnp.tril(jnp.ones((s, s), bool)), scores, -jnp.inf)
    p = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bhqk,bhkd->bhqd", p, vf, precision=jax.lax.Precision.HIGHEST).astype(q.dtype)


def jax_framework(q, k, v, causal: bool = False, **params):
    """jax.nn.dot_product_attention takes (B, S, H, D)."""
    import jax

    t = lambda x: x.transpose(0, 2, 1, 3)
    return t(jax.nn.dot_product_attention(t(q), t(k), t(v), is_causal=causal))


def pallas_kernel(interpret: bool = False):
    """The Pallas kernel (`kernels/pallas/attention.py`); `interpret=True` runs it on the CPU."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "pallas").build(interpret)
