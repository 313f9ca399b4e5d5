"""The Triton matrix product C = A @ B (forward only) and its wrapper.

Read after `kernels/matmul.py` (what it supports, counts, the PyTorch reference). Each program
computes one BLOCK_M x BLOCK_N tile of C, looping over K in BLOCK_K steps with an fp32
accumulator; programs are grouped along M so that neighbouring programs reuse the same B tiles
from L2 (the "super-grouping" of Triton's matrix-multiplication tutorial). On a GPU the block
sizes are autotuned per (M, N, K) for large products; small products and the interpreter use one
fixed configuration. fp32 inputs use IEEE fp32 products (not tf32), so they meet fp32 tolerances.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Below this many multiply-adds a fixed configuration is used on the GPU: tuning a small product
# costs more compile time than it can ever save.
AUTOTUNE_MIN_MACS = 1 << 30


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


# On a GPU, products of at least AUTOTUNE_MIN_MACS multiply-adds pick one of these per (M, N, K).
_GPU_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
    triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=4, num_warps=8),
]
_matmul_tuned = triton.autotune(configs=_GPU_CONFIGS, key=["M", "N", "K", "IEEE"])(_matmul_kernel)


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
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)  # noqa: E731
        _matmul_tuned[grid](*args, IEEE=ieee)
    else:
        bm, bn, bk, warps = (64, 64, 32, 4) if a.is_cuda else (32, 32, 32, 1)
        _matmul_kernel[(triton.cdiv(m, bm) * triton.cdiv(n, bn),)](
            *args, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=4, IEEE=ieee, num_warps=warps)
    return c
