"""Attention forward, flash-attention style: O = softmax(Q K^T / sqrt(D) [+ causal mask]) V.

Q, K, V and O are (B, H, S, D), D in {16, 32, 64, 128}; `causal` is a variant of every shape.
Reads top to bottom as: what it supports, FLOP and byte counts, references, the framework's
operation, the Triton kernel, the Pallas kernel. Loaded by path by the workbench; triton and jax
are imported only when a kernel is built.

Each program owns BLOCK_M queries of one (batch, head) and streams the keys and values past them
in blocks of BLOCK_N with an online softmax (running max and sum in fp32), so the S x S scores
never reach device memory. The probabilities are rounded to the input dtype before the P V
product, as FlashAttention does, so the tensor cores do that product too. Causal attention skips
the blocks above the diagonal and masks only the diagonal block.
"""

from __future__ import annotations

import functools
import math

from workbench.kernels.shapes import dims_problem

NAME = "attention"
SUMMARY = "attention forward (B, H, S, D), causal or not, D in 16/32/64/128, online softmax"
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


def check_shape(shape: tuple[int, ...], **params: object) -> str | None:
    problem = dims_problem(shape, ("batch", "heads", "seq", "head_dim"))
    if problem:
        return problem
    if shape[3] not in HEAD_DIMS:
        return f"head_dim {shape[3]} is not supported; supported: {', '.join(map(str, HEAD_DIMS))}"
    return None


def flops(shape: tuple[int, ...], causal: bool = False, **params: object) -> int:
    b, h, s, d = shape
    full = 4 * b * h * s * s * d  # Q K^T and P V, 2 flops per multiply-add each
    return full // 2 if causal else full


def bytes_moved(shape: tuple[int, ...], itemsize: int, **params: object) -> int:
    b, h, s, d = shape
    return 4 * b * h * s * d * itemsize


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


def _gpu_configs(triton):
    return [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_stages=4, num_warps=4),
    ]


AUTOTUNE_MIN_SEQ = 1024


@functools.cache
def triton_kernel():
    import torch
    import triton
    import triton.language as tl

    # Triton resolves the names a kernel uses in its module's globals, not in this function's scope.
    globals().update(triton=triton, tl=tl)

    @triton.jit
    def _attn_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                    offs_m, offs_d, lo, hi, seq_len, qk_scale,
                    BLOCK_N: tl.constexpr, MASKED: tl.constexpr, IEEE: tl.constexpr):
        for start_n in range(lo, hi, BLOCK_N):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            offs_n = start_n + tl.arange(0, BLOCK_N)
            k_ptrs = k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd
            v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
            if MASKED:
                k = tl.load(k_ptrs, mask=offs_n[None, :] < seq_len, other=0.0)
            else:
                k = tl.load(k_ptrs)
            if IEEE:
                qk = tl.dot(q, k, input_precision="ieee")
            else:
                qk = tl.dot(q, k)
            qk = qk * qk_scale
            if MASKED:  # the diagonal block (causal) or the ragged last block
                keep = (offs_n[None, :] < seq_len) & (offs_m[:, None] >= offs_n[None, :])
                qk = tl.where(keep, qk, -1.0e6)
            m_ij = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_ij[:, None])
            alpha = tl.math.exp2(m_i - m_ij)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None]
            if MASKED:
                v = tl.load(v_ptrs, mask=offs_n[:, None] < seq_len, other=0.0)
            else:
                v = tl.load(v_ptrs)
            if IEEE:
                acc = tl.dot(p.to(v.dtype), v, acc, input_precision="ieee")
            else:
                acc = tl.dot(p.to(v.dtype), v, acc)
            m_i = m_ij
        return acc, l_i, m_i

    globals()["_attn_inner"] = _attn_inner

    @triton.jit
    def _attn_fwd(Q, K, V, O, sm_scale, n_heads, seq_len,
                  stride_qb, stride_qh, stride_qs, stride_qd,
                  stride_kb, stride_kh, stride_ks, stride_kd,
                  stride_vb, stride_vh, stride_vs, stride_vd,
                  stride_ob, stride_oh, stride_os, stride_od,
                  HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  CAUSAL: tl.constexpr, IEEE: tl.constexpr):
        start_m = tl.program_id(0)
        off_bh = tl.program_id(1)
        off_b = off_bh // n_heads
        off_h = off_bh % n_heads
        q_base = Q + off_b * stride_qb + off_h * stride_qh
        k_base = K + off_b * stride_kb + off_h * stride_kh
        v_base = V + off_b * stride_vb + off_h * stride_vh
        o_base = O + off_b * stride_ob + off_h * stride_oh
        offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        q = tl.load(q_base + offs_m[:, None] * stride_qs + offs_d[None, :] * stride_qd,
                    mask=offs_m[:, None] < seq_len, other=0.0)
        m_i = tl.zeros((BLOCK_M,), dtype=tl.float32) - float("inf")
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
        qk_scale = sm_scale * 1.4426950408889634  # exp(x) = exp2(x * log2(e))
        if CAUSAL:
            # Blocks wholly below the diagonal: no mask; then the diagonal block, masked.
            diag = start_m * BLOCK_M
            acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, 0, diag, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
            acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, diag, tl.minimum(diag + BLOCK_M, seq_len), seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=True, IEEE=IEEE)
        else:
            # Whole key blocks unmasked, then the ragged tail; the query positions are shifted by
            # seq_len there so that the causal half of the mask keeps every key.
            full = (seq_len // BLOCK_N) * BLOCK_N
            acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, 0, full, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
            acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m + seq_len, offs_d, full, seq_len, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=True, IEEE=IEEE)
        acc = acc / l_i[:, None]
        tl.store(o_base + offs_m[:, None] * stride_os + offs_d[None, :] * stride_od,
                 acc.to(O.dtype.element_ty), mask=offs_m[:, None] < seq_len)

    tuned = triton.autotune(configs=_gpu_configs(triton), key=["seq_len", "HEAD_DIM", "CAUSAL", "IEEE"])(_attn_fwd)

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """Attention forward.

        Args:
            q, k, v: (B, H, S, D) tensors of one dtype and device, D in 16/32/64/128.
            causal: mask keys after each query.
        Returns:
            (B, H, S, D) tensor of q's dtype.
        """
        if not (q.shape == k.shape == v.shape):
            raise ValueError(f"attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} must have one shape")
        problem = check_shape(tuple(q.shape))
        if problem:
            raise ValueError(f"attention: {problem}")
        if not (q.dtype == k.dtype == v.dtype):
            raise ValueError(f"attention: dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
        b, h, s, d = q.shape
        o = torch.empty_like(q)
        ieee = q.dtype == torch.float32
        args = (q, k, v, o, 1.0 / math.sqrt(d), h, s, *q.stride(), *k.stride(), *v.stride(), *o.stride())
        if q.is_cuda and s >= AUTOTUNE_MIN_SEQ:
            grid = lambda meta: (triton.cdiv(s, meta["BLOCK_M"]), b * h)
            tuned[grid](*args, HEAD_DIM=d, CAUSAL=causal, IEEE=ieee)
        else:
            bm, bn, warps = (64, 32, 4) if q.is_cuda else (32, 32, 1)
            _attn_fwd[(triton.cdiv(s, bm), b * h)](*args, HEAD_DIM=d, BLOCK_M=bm, BLOCK_N=bn,
                                                   CAUSAL=causal, IEEE=ieee, num_warps=warps)
        return o

    return attention


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


@functools.cache
def pallas_kernel(interpret: bool = False):
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    mask_value = -0.7 * float(jnp.finfo(jnp.float32).max)
    squeezed = pl.Squeezed() if hasattr(pl, "Squeezed") else None

    def _attn_kernel(q_ref, k_ref, v_ref, o_ref, *, sm_scale, causal, block_q, block_k, seq_len, n_kv_blocks, precision):
        i = pl.program_id(2)
        q = q_ref[...]
        q_pos = i * block_q + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 0)

        def body(j, carry):
            acc, m, l = carry
            start = pl.multiple_of(j * block_k, block_k)
            k = k_ref[pl.ds(start, block_k), :]
            v = v_ref[pl.ds(start, block_k), :]
            s = jax.lax.dot_general(q, k, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32,
                                    precision=precision) * sm_scale
            k_pos = start + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 1)
            keep = k_pos < seq_len
            if causal:
                keep = keep & (q_pos >= k_pos)
            s = jnp.where(keep, s, mask_value)
            m_new = jnp.maximum(m, s.max(axis=1))
            p = jnp.exp(s - m_new[:, None])
            alpha = jnp.exp(m - m_new)
            l = l * alpha + p.sum(axis=1)
            acc = acc * alpha[:, None] + jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32,
                                                 precision=precision)
            return acc, m_new, l

        d = q.shape[-1]
        init = (jnp.zeros((block_q, d), jnp.float32), jnp.full((block_q,), -jnp.inf, jnp.float32),
                jnp.zeros((block_q,), jnp.float32))
        upper = jnp.minimum(jax.lax.div((i + 1) * block_q + block_k - 1, block_k), n_kv_blocks) if causal else n_kv_blocks
        acc, _, l = jax.lax.fori_loop(0, upper, body, init)
        o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)

    @functools.partial(jax.jit, static_argnames=("causal",))
    def attention(q, k, v, causal: bool = False):
        """Attention forward of (B, H, S, D) arrays, D in 16/32/64/128.

        The sequence is zero-padded to whole key blocks (keys past S are masked): a dynamic
        slice at the edge would be clamped (shifted), not masked.
        """
        b, h, s, d = q.shape
        block_q, block_k = (32, 32) if interpret else (64, 64)
        sp = pl.cdiv(s, block_k) * block_k if interpret else max(block_k, pl.next_power_of_2(s))
        if sp != s:  # queries too: the GPU lowering does not mask the stores of an overhanging block
            pad = ((0, 0), (0, 0), (0, sp - s), (0, 0))
            q, k, v = jnp.pad(q, pad), jnp.pad(k, pad), jnp.pad(v, pad)
        precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
        extra = {}
        if not interpret:
            from jax.experimental.pallas import triton as pltriton

            extra["compiler_params"] = pltriton.CompilerParams(num_warps=4, num_stages=2)
        kernel = functools.partial(_attn_kernel, sm_scale=1.0 / math.sqrt(d), causal=causal, block_q=block_q,
                                   block_k=block_k, seq_len=s, n_kv_blocks=sp // block_k, precision=precision)
        out = pl.pallas_call(
            kernel,
            out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
            grid=(b, h, sp // block_q),
            in_specs=[
                pl.BlockSpec((squeezed, squeezed, block_q, d), lambda bi, hi, i: (bi, hi, i, 0)),
                pl.BlockSpec((squeezed, squeezed, sp, d), lambda bi, hi, i: (bi, hi, 0, 0)),
                pl.BlockSpec((squeezed, squeezed, sp, d), lambda bi, hi, i: (bi, hi, 0, 0)),
            ],
            out_specs=pl.BlockSpec((squeezed, squeezed, block_q, d), lambda bi, hi, i: (bi, hi, i, 0)),
            interpret=interpret,
            **extra,
        )(q, k, v)
        return out[:, :, :s]

    return attention
