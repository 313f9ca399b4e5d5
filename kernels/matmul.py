"""Tiled matrix product C = A @ B with fp32 accumulation, A (M, K), B (K, N).

Reads top to bottom as: what it supports, FLOP and byte counts, references, the framework's
operation, the Triton kernel, the Pallas kernel. Loaded by path by the workbench; triton and jax
are imported only when a kernel is built.

Triton: tiles of BLOCK_M x BLOCK_N per program, grouped along M so neighbouring programs reuse
the same B tiles from L2 (the "super-grouping" of Triton's matrix tutorial); on a GPU the block
sizes are autotuned per (M, N, K), in the interpreter one small fixed configuration is used.
fp32 inputs use IEEE fp32 products (not tf32), so they meet fp32 tolerances.
"""

from __future__ import annotations

import functools

from workbench.kernels.shapes import dims_problem

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


def _gpu_configs(triton):
    return [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
    ]


# Below this many multiply-adds a fixed configuration is used on the GPU: tuning a small product
# costs more compile time than it can ever save.
AUTOTUNE_MIN_MACS = 1 << 30


@functools.cache
def triton_kernel():
    import torch
    import triton
    import triton.language as tl

    # Triton resolves the names a kernel uses in its module's globals, not in this function's scope.
    globals().update(triton=triton, tl=tl)

    @triton.jit
    def _matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                       stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       GROUP_M: tl.constexpr, IEEE: tl.constexpr):
        pid = tl.program_id(0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
        pid_n = (pid % num_pid_in_group) // group_size_m

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        # Wrap out-of-range rows/columns onto valid ones (their results are masked at the store),
        # so the loads of the main loop need a mask only along K.
        offs_am = offs_m % M
        offs_bn = offs_n % N
        a_ptrs = a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c = acc.to(c_ptr.dtype.element_ty)
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, c, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))

    tuned = triton.autotune(configs=_gpu_configs(triton), key=["M", "N", "K", "IEEE"])(_matmul_kernel)

    def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """C = A @ B with fp32 accumulation.

        Args:
            a: (M, K) tensor; b: (K, N) tensor of the same dtype and device.
        Returns:
            (M, N) tensor of a's dtype.
        """
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: cannot multiply {tuple(a.shape)} by {tuple(b.shape)}: need (M, K) @ (K, N)")
        if a.dtype != b.dtype:
            raise ValueError(f"matmul: dtypes differ: {a.dtype} and {b.dtype}")
        if a.device != b.device:
            raise ValueError(f"matmul: devices differ: {a.device} and {b.device}")
        m, k = a.shape
        n = b.shape[1]
        c = torch.empty((m, n), device=a.device, dtype=a.dtype)
        ieee = a.dtype == torch.float32
        args = (a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1))
        if a.is_cuda and m * n * k >= AUTOTUNE_MIN_MACS:
            grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)
            tuned[grid](*args, IEEE=ieee)
        else:
            bm, bn, bk, warps = (64, 64, 32, 4) if a.is_cuda else (32, 32, 32, 1)
            _matmul_kernel[(triton.cdiv(m, bm) * triton.cdiv(n, bn),)](
                *args, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=4, IEEE=ieee, num_warps=warps)
        return c

    return matmul


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


@functools.cache
def pallas_kernel(interpret: bool = False, gpu_blocks: tuple[int, int, int, int, int] | None = None):
    """The Pallas matmul; `gpu_blocks` = (block_m, block_n, block_k, num_warps, num_stages) overrides
    the GPU configuration (benchmarks/kernels_bwd_gpu.py sweeps a few)."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    def _matmul_kernel(a_ref, b_ref, o_ref, *, block_k: int, n_k: int, precision):
        def body(i, acc):
            a = a_ref[:, pl.ds(i * block_k, block_k)]
            b = b_ref[pl.ds(i * block_k, block_k), :]
            return acc + jnp.dot(a, b, preferred_element_type=jnp.float32, precision=precision)

        acc = jax.lax.fori_loop(0, n_k, body, jnp.zeros(o_ref.shape, jnp.float32))
        o_ref[...] = acc.astype(o_ref.dtype)

    @jax.jit
    def matmul(a, b):
        """C = A @ B of (M, K) and (K, N) arrays with fp32 accumulation, in a's dtype.

        K is zero-padded to a multiple of the K block: a dynamic slice at the edge would be
        clamped (shifted), not masked, so padding is what keeps the ragged tail exact.
        Power-of-two shapes, the fast path, are not copied.
        """
        m, k = a.shape
        n = b.shape[1]
        bm, bn, bk, warps, stages = (32, 32, 32, 1, 1) if interpret else (gpu_blocks or GPU_BLOCKS)
        # The GPU lowering wants power-of-two blocks, and the K block here is all of K.
        kp = pl.cdiv(k, bk) * bk if interpret else max(bk, pl.next_power_of_2(k))
        # The GPU lowering masks neither loads nor stores of blocks that overhang the arrays, so M
        # and N are padded to whole blocks too; the output is cut back to (M, N).
        mp, np_ = pl.cdiv(m, bm) * bm, pl.cdiv(n, bn) * bn
        if (mp, kp) != (m, k):
            a = jnp.pad(a, ((0, mp - m), (0, kp - k)))
        if (kp, np_) != (k, n):
            b = jnp.pad(b, ((0, kp - k), (0, np_ - n)))
        precision = jax.lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
        extra = {}
        if not interpret:
            from jax.experimental.pallas import triton as pltriton

            extra["compiler_params"] = pltriton.CompilerParams(num_warps=warps, num_stages=stages)
        out = pl.pallas_call(
            functools.partial(_matmul_kernel, block_k=bk, n_k=kp // bk, precision=precision),
            out_shape=jax.ShapeDtypeStruct((mp, np_), a.dtype),
            grid=(mp // bm, np_ // bn),
            in_specs=[pl.BlockSpec((bm, kp), lambda i, j: (i, 0)), pl.BlockSpec((kp, bn), lambda i, j: (0, j))],
            out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
            interpret=interpret,
            **extra,
        )(a, b)
        return out[:m, :n]

    return matmul
