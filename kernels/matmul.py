"""Tiled matrix product C = A @ B with fp32 accumulation, A (M, K), B (K, N).

Reads top to bottom as: what it supports, FLOP and byte counts, the references (PyTorch for
Triton, `jax.numpy` for Pallas), the framework's operation (the benchmark's baseline); the kernels
are in `kernels/triton/matmul.py` and `kernels/pallas/matmul.py`, read in the same order. Loaded
by path by the workbench; the kernel modules (which import triton and jax) only when a kernel is
built. Forward only: matmul has no backward.

Both kernels compute tiles of C with an fp32 accumulator, looping over K; fp32 inputs use IEEE
fp32 products (not tf32), so they meet fp32 tolerances.
"""

from __future__ import annotations

from workbench.kernels.shapes import dims_problem

# What the registry reads (boilerplate: every kernel module declares these names, with its own values).
NAME = "matmul"
SUMMARY = "C = A @ B, A (M, K), B (K, N), fp32 accumulation, output in the input dtype"
DTYPES = ("float32", "float16", "bfloat16")
CHECK_SHAPES = {
    "cpu": [(1, 1, 1), (17, 33, 65), (64, 48, 80), (100, 1, 37)],
    "gpu": [(1, 1, 1), (17, 33, 65), (257, 129, 511), (1024, 1024, 1024)],
}
BENCH_SHAPES = {"cpu": [(64, 48, 80)], "gpu": [(4096, 4096, 4096)]}
VARIANTS: tuple[dict, ...] = ({},)
# Measured on an H100 (benchmarks/kernels_h100.md): at 1024^3 the tensor-core products of cuBLAS
# (through XLA), of this Triton kernel and of the Pallas kernel all differ from the fp32
# reference by up to 0.0625 (fp16) and 0.5 (bf16) on a few hundred of a million outputs, with the
# same distribution; torch.testing's atol of 1e-5 cannot hold for sums of K products.
TOLERANCES: dict[str, tuple[float, float, str]] = {
    "float32": (1e-5, 1e-4, ("a sum of K fp32 products in another order than the reference's: "
                            "rounding grows with K, so fp32 is checked at rtol 1e-5, atol 1e-4")),
    "float16": (1e-3, 6.25e-2, ("tensor-core sums of K fp16 products: cuBLAS, Triton and Pallas all differ from "
                               "the fp32 reference by up to 0.0625 at K=1024 on an H100, so atol is 0.0625")),
    "bfloat16": (1.6e-2, 0.5, ("tensor-core sums of K bf16 products: cuBLAS, Triton and Pallas all differ from "
                              "the fp32 reference by up to 0.5 at K=1024 on an H100, so atol is 0.5")),
}
FRAMEWORK = {"torch": "torch.matmul", "jax": "jax.numpy.dot"}
BOUND = "compute"


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    return dims_problem(shape, ("M", "N", "K"))


def flops(shape: tuple[int, ...], **params: object) -> int:
    m, n, k = shape
    return 2 * m * n * k


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    m, n, k = shape
    return (m * k + k * n + m * n) * itemsize


def make_inputs(shape: tuple[int, ...], rng, **params: object) -> tuple:
    m, n, k = shape
    return rng.standard_normal((m, k), dtype="float32"), rng.standard_normal((k, n), dtype="float32")


# -- PyTorch -----------------------------------------------------------------------------------
def torch_reference(a, b, **params):
    import torch

    if a.is_cuda:
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return torch.matmul(a.float(), b.float()).to(a.dtype)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
    return torch.matmul(a.double(), b.double()).to(a.dtype)


def torch_framework(a, b, **params):
    import torch

    return torch.matmul(a, b)


def triton_kernel():
    """The Triton matmul (`kernels/triton/matmul.py`, loaded here so TRITON_INTERPRET is honoured)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "triton").matmul


# -- JAX ---------------------------------------------------------------------------------------
def jax_reference(a, b, **params):
    import jax
    import jax.numpy as jnp

    return jnp.dot(a.astype(jnp.float32), b.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST).astype(a.dtype)


def jax_framework(a, b, **params):
    import jax.numpy as jnp

    return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(a.dtype)


# (block_m, block_n, block_k, num_warps, num_stages) on a GPU: 0.80-0.82 x jnp.dot at 4096^3 on an H100.
GPU_BLOCKS = (128, 128, 64, 8, 3)


def pallas_kernel(interpret: bool = False, gpu_blocks: tuple[int, int, int, int, int] | None = None):
    """The Pallas matmul (`kernels/pallas/matmul.py`); `interpret=True` runs it on the CPU, and
    `gpu_blocks` = (block_m, block_n, block_k, num_warps, num_stages) overrides GPU_BLOCKS
    (benchmarks/kernels_bwd_gpu.py sweeps a few)."""
    from workbench.kernels.registry import load_backend_module

    return load_backend_module(NAME, "pallas").build(interpret, gpu_blocks)
