"""The Triton attention, forward and FlashAttention-2 backward, and its torch.autograd wrapper.

Read after `kernels/attention.py` (what it supports, counts, the PyTorch reference).

Forward: each program owns BLOCK_M queries of one (batch, head) and streams the keys and values
past them in blocks of BLOCK_N with an online softmax (running max and sum in fp32), so the
S x S scores never reach device memory; it also writes each query's log-sum-exp (base 2, of the
scaled scores), all the backward needs to recompute the probabilities. The probabilities are
rounded to the input dtype before the P V product, as FlashAttention does, so the tensor cores
do that product too. Causal attention skips the blocks above the diagonal and masks only the
diagonal block.

Backward (FlashAttention-2, Dao 2023, algorithm 2): delta = rowsum(dO * O) first; then one
program per block of keys accumulates dK and dV over the query blocks that see it, recomputing
P = exp2(Q K^T * scale - lse) blockwise, and one program per block of queries accumulates dQ
over the key blocks it sees. dS = P * (dO V^T - delta). Queries past the sequence end load as
zeros (with dO = 0 they add nothing) and keys past it as zeros (they add nothing to dQ), so only
the causal diagonal needs a mask.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import refuse

_op = load_module("attention")

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2(e))
AUTOTUNE_MIN_SEQ = 1024
# The backward has two kernels and more configurations to try: autotuned from longer sequences only,
# so the GPU checks (S <= 1024) compile a handful of kernels, not dozens.
AUTOTUNE_MIN_SEQ_BWD = 2048


# -- forward -------------------------------------------------------------------------------------
@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
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


@triton.jit
def _attn_fwd(Q, K, V, O, LSE, sm_scale, n_heads, seq_len,
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
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, 0, diag, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, diag, tl.minimum(diag + BLOCK_M, seq_len), seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=True, IEEE=IEEE)
    else:
        # Whole key blocks unmasked, then the ragged tail; the query positions are shifted by
        # seq_len there so that the causal half of the mask keeps every key.
        full = (seq_len // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m, offs_d, 0, full, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_kd, stride_vs, stride_vd,
                                        offs_m + seq_len, offs_d, full, seq_len, seq_len, qk_scale,
                                        BLOCK_N=BLOCK_N, MASKED=True, IEEE=IEEE)
    acc = acc / l_i[:, None]
    tl.store(o_base + offs_m[:, None] * stride_os + offs_d[None, :] * stride_od,
             acc.to(O.dtype.element_ty), mask=offs_m[:, None] < seq_len)
    tl.store(LSE + off_bh * seq_len + offs_m, m_i + tl.math.log2(l_i), mask=offs_m < seq_len)


def _fwd_configs():
    return [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_stages=4, num_warps=4),
    ]


_attn_fwd_tuned = triton.autotune(configs=_fwd_configs(), key=["seq_len", "HEAD_DIM", "CAUSAL", "IEEE"])(_attn_fwd)


# -- backward ------------------------------------------------------------------------------------
@triton.jit
def _attn_bwd_delta(O, DO, DELTA, n_heads, seq_len,
                    stride_ob, stride_oh, stride_os, stride_od,
                    stride_dob, stride_doh, stride_dos, stride_dod,
                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    off_bh = tl.program_id(1)
    off_b = off_bh // n_heads
    off_h = off_bh % n_heads
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = offs_m[:, None] < seq_len
    o = tl.load(O + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :] * stride_od,
                mask=rows, other=0.0).to(tl.float32)
    do = tl.load(DO + off_b * stride_dob + off_h * stride_doh + offs_m[:, None] * stride_dos
                 + offs_d[None, :] * stride_dod, mask=rows, other=0.0).to(tl.float32)
    tl.store(DELTA + off_bh * seq_len + offs_m, tl.sum(o * do, axis=1), mask=offs_m < seq_len)


@triton.jit
def _attn_bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qs, stride_dos,
                         offs_n, offs_d, lo, hi, seq_len, qk_scale,
                         BLOCK_M: tl.constexpr, MASKED: tl.constexpr, IEEE: tl.constexpr):
    """dK and dV of one key block from the query blocks [lo, hi); works on transposes (keys as rows)."""
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        rows = offs_m[None, :] < seq_len
        q_t = tl.load(q_base + offs_m[None, :] * stride_qs + offs_d[:, None], mask=rows, other=0.0)
        lse = tl.load(lse_base + offs_m, mask=offs_m < seq_len, other=0.0)
        if IEEE:
            qk_t = tl.dot(k, q_t, input_precision="ieee")
        else:
            qk_t = tl.dot(k, q_t)
        p_t = tl.math.exp2(qk_t * qk_scale - lse[None, :])
        if MASKED:
            p_t = tl.where(offs_m[None, :] >= offs_n[:, None], p_t, 0.0)
        do = tl.load(do_base + offs_m[:, None] * stride_dos + offs_d[None, :], mask=offs_m[:, None] < seq_len, other=0.0)
        if IEEE:
            dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision="ieee")
            dp_t = tl.dot(v, tl.trans(do), input_precision="ieee")
        else:
            dv = tl.dot(p_t.to(do.dtype), do, dv)
            dp_t = tl.dot(v, tl.trans(do))
        delta = tl.load(delta_base + offs_m, mask=offs_m < seq_len, other=0.0)
        ds_t = p_t * (dp_t - delta[None, :])
        if IEEE:
            dk = tl.dot(ds_t.to(q_t.dtype), tl.trans(q_t), dk, input_precision="ieee")
        else:
            dk = tl.dot(ds_t.to(q_t.dtype), tl.trans(q_t), dk)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, DK, DV, LSE, DELTA, sm_scale, n_heads, seq_len,
                   stride_b, stride_h, stride_s,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   CAUSAL: tl.constexpr, IEEE: tl.constexpr):
    start_n = tl.program_id(0) * BLOCK_N
    off_bh = tl.program_id(1)
    base = (off_bh // n_heads) * stride_b + (off_bh % n_heads) * stride_h
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_offsets = offs_n[:, None] * stride_s + offs_d[None, :]
    keys = offs_n[:, None] < seq_len
    k = tl.load(K + base + kv_offsets, mask=keys, other=0.0)
    v = tl.load(V + base + kv_offsets, mask=keys, other=0.0)
    dk = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634
    lse_base = LSE + off_bh * seq_len
    delta_base = DELTA + off_bh * seq_len
    lo = 0
    if CAUSAL:
        # The query blocks on this key block's diagonal, masked; then those wholly below it.
        lo = start_n + BLOCK_N
        dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, Q + base, DO + base, lse_base, delta_base, stride_s, stride_s,
                                      offs_n, offs_d, start_n, lo, seq_len, qk_scale,
                                      BLOCK_M=BLOCK_M, MASKED=True, IEEE=IEEE)
    dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, Q + base, DO + base, lse_base, delta_base, stride_s, stride_s,
                                  offs_n, offs_d, lo, seq_len, seq_len, qk_scale,
                                  BLOCK_M=BLOCK_M, MASKED=False, IEEE=IEEE)
    tl.store(DK + base + kv_offsets, (dk * sm_scale).to(DK.dtype.element_ty), mask=keys)
    tl.store(DV + base + kv_offsets, dv.to(DV.dtype.element_ty), mask=keys)


@triton.jit
def _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_ks,
                       offs_m, offs_d, lo, hi, qk_scale,
                       BLOCK_N: tl.constexpr, MASKED: tl.constexpr, IEEE: tl.constexpr):
    """dQ of one query block from the key blocks [lo, hi); keys past the end load as zeros."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_t_offsets = offs_n[None, :] * stride_ks + offs_d[:, None]
        # Keys past the end: zeros, so they add nothing to dQ (their P is finite).
        k_t = tl.load(k_base + kv_t_offsets, mask=offs_n[None, :] < hi, other=0.0)
        v_t = tl.load(v_base + kv_t_offsets, mask=offs_n[None, :] < hi, other=0.0)
        if IEEE:
            qk = tl.dot(q, k_t, input_precision="ieee")
            dp = tl.dot(do, v_t, input_precision="ieee")
        else:
            qk = tl.dot(q, k_t)
            dp = tl.dot(do, v_t)
        p = tl.math.exp2(qk * qk_scale - lse[:, None])
        if MASKED:
            p = tl.where(offs_m[:, None] >= offs_n[None, :], p, 0.0)
        ds = p * (dp - delta[:, None])
        if IEEE:
            dq = tl.dot(ds.to(k_t.dtype), tl.trans(k_t), dq, input_precision="ieee")
        else:
            dq = tl.dot(ds.to(k_t.dtype), tl.trans(k_t), dq)
    return dq


# Its prologue has the shape of _attn_bwd_dkdv's (boilerplate of a FlashAttention backward kernel:
# this program's block of queries here, of keys there; the offsets and masked loads of that block).
@triton.jit
def _attn_bwd_dq(Q, K, V, DO, DQ, LSE, DELTA, sm_scale, n_heads, seq_len,
                 stride_b, stride_h, stride_s,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 CAUSAL: tl.constexpr, IEEE: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    off_bh = tl.program_id(1)
    base = (off_bh // n_heads) * stride_b + (off_bh % n_heads) * stride_h
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_offsets = offs_m[:, None] * stride_s + offs_d[None, :]
    rows = offs_m[:, None] < seq_len
    q = tl.load(Q + base + q_offsets, mask=rows, other=0.0)
    do = tl.load(DO + base + q_offsets, mask=rows, other=0.0)
    lse = tl.load(LSE + off_bh * seq_len + offs_m, mask=offs_m < seq_len, other=0.0)
    delta = tl.load(DELTA + off_bh * seq_len + offs_m, mask=offs_m < seq_len, other=0.0)
    dq = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634
    if CAUSAL:
        # Key blocks wholly below the diagonal, unmasked; then the diagonal ones, masked.
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, K + base, V + base, stride_s, offs_m, offs_d,
                                0, start_m, qk_scale, BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, K + base, V + base, stride_s, offs_m, offs_d,
                                start_m, tl.minimum(start_m + BLOCK_M, seq_len), qk_scale,
                                BLOCK_N=BLOCK_N, MASKED=True, IEEE=IEEE)
    else:
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, K + base, V + base, stride_s, offs_m, offs_d,
                                0, seq_len, qk_scale, BLOCK_N=BLOCK_N, MASKED=False, IEEE=IEEE)
    tl.store(DQ + base + q_offsets, (dq * sm_scale).to(DQ.dtype.element_ty), mask=rows)


def _bwd_configs():
    return [
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_stages=3, num_warps=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128}, num_stages=2, num_warps=8),
    ]


# The blocks of dK/dV's program are keys (BLOCK_N) and of dQ's queries (BLOCK_M); both loop over
# the other in blocks. Causal needs BLOCK_M to divide BLOCK_N (dK/dV) and BLOCK_N to divide BLOCK_M
# (dQ) so that the diagonal lands on block edges: each config is used with the roles that fit.
_attn_bwd_dkdv_tuned = triton.autotune(
    configs=[c for c in _bwd_configs() if c.kwargs["BLOCK_N"] % c.kwargs["BLOCK_M"] == 0],
    key=["seq_len", "HEAD_DIM", "CAUSAL", "IEEE"])(_attn_bwd_dkdv)
_attn_bwd_dq_tuned = triton.autotune(
    configs=[c for c in _bwd_configs() if c.kwargs["BLOCK_M"] % c.kwargs["BLOCK_N"] == 0],
    key=["seq_len", "HEAD_DIM", "CAUSAL", "IEEE"])(_attn_bwd_dq)


# -- wrappers --------------------------------------------------------------------------------------
def attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(O, log-sum-exp in base 2 of the scaled scores, (B*H, S) fp32)."""
    b, h, s, d = q.shape
    o = torch.empty_like(q)
    lse = torch.empty((b * h, s), dtype=torch.float32, device=q.device)
    ieee = q.dtype == torch.float32
    args = (q, k, v, o, lse, 1.0 / math.sqrt(d), h, s, *q.stride(), *k.stride(), *v.stride(), *o.stride())
    if q.is_cuda and s >= AUTOTUNE_MIN_SEQ:
        grid = lambda meta: (triton.cdiv(s, meta["BLOCK_M"]), b * h)
        _attn_fwd_tuned[grid](*args, HEAD_DIM=d, CAUSAL=causal, IEEE=ieee)
    else:
        bm, bn, warps = (64, 32, 4) if q.is_cuda else (32, 32, 1)
        _attn_fwd[(triton.cdiv(s, bm), b * h)](*args, HEAD_DIM=d, BLOCK_M=bm, BLOCK_N=bn,
                                               CAUSAL=causal, IEEE=ieee, num_warps=warps)
    return o, lse


def attention_bwd(q, k, v, o, lse, do, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dQ, dK, dV. Q, K, V, dO are made contiguous: the backward kernels share one stride set."""
    b, h, s, d = q.shape
    q, k, v, do = (t.contiguous() for t in (q, k, v, do))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty_like(lse)
    ieee = q.dtype == torch.float32
    # fp32 tiles are twice the bytes: smaller blocks keep them and their pipeline in shared memory.
    block = 64 if q.is_cuda and not ieee else 32
    _attn_bwd_delta[(triton.cdiv(s, block), b * h)](o, do, delta, h, s, *o.stride(), *do.stride(),
                                                    HEAD_DIM=d, BLOCK_M=block)
    common = (1.0 / math.sqrt(d), h, s, *q.stride()[:3])
    if q.is_cuda and s >= AUTOTUNE_MIN_SEQ_BWD:
        _attn_bwd_dkdv_tuned[lambda meta: (triton.cdiv(s, meta["BLOCK_N"]), b * h)](
            q, k, v, do, dk, dv, lse, delta, *common, HEAD_DIM=d, CAUSAL=causal, IEEE=ieee)
        _attn_bwd_dq_tuned[lambda meta: (triton.cdiv(s, meta["BLOCK_M"]), b * h)](
            q, k, v, do, dq, lse, delta, *common, HEAD_DIM=d, CAUSAL=causal, IEEE=ieee)
    else:
        fixed = {"num_warps": 4, "num_stages": 2} if q.is_cuda else {"num_warps": 1}
        _attn_bwd_dkdv[(triton.cdiv(s, block), b * h)](q, k, v, do, dk, dv, lse, delta, *common, HEAD_DIM=d,
                                                       BLOCK_M=block, BLOCK_N=block, CAUSAL=causal, IEEE=ieee, **fixed)
        _attn_bwd_dq[(triton.cdiv(s, block), b * h)](q, k, v, do, dq, lse, delta, *common, HEAD_DIM=d,
                                                     BLOCK_M=block, BLOCK_N=block, CAUSAL=causal, IEEE=ieee, **fixed)
    return dq, dk, dv


class AttentionFunction(torch.autograd.Function):
    """Saves Q, K, V, O and the log-sum-exp (fp32, one per query): O(S) extra memory, not O(S^2)."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool):
        o, lse = attention_fwd(q, k, v, causal)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal = causal
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_bwd(q, k, v, o, lse, do, ctx.causal)
        return dq, dk, dv, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Attention, differentiable with torch.autograd (dQ, dK, dV).

    Args:
        q, k, v: (B, H, S, D) tensors of one dtype and device, D in 16/32/64/128.
        causal: mask keys after each query.
    Returns:
        (B, H, S, D) tensor of q's dtype.
    Raises:
        InvalidRequest: shapes or dtypes that differ, or a shape the kernel cannot take.
    """
    refuse(_op.NAME, _op.inputs_problem(q, k, v))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        refuse(_op.NAME, _op.check_grad_shape(tuple(q.shape)), grad=True)
    return AttentionFunction.apply(q, k, v, causal)
