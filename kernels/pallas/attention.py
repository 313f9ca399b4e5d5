"""The Pallas attention, forward and FlashAttention-2 backward, and its jax.custom_vjp wrapper.

Read after `kernels/attention.py`. The layout follows jax/experimental/pallas/ops/gpu/attention.py:
private kernel bodies of refs, one program per (batch, head, block), the other sequence whole in
the block so that a loop walks it. The forward also writes each query's log-sum-exp; the backward
recomputes P = exp(Q K^T * scale - lse) blockwise from it: one kernel per block of keys
accumulates dK and dV over the query blocks that see it, one per block of queries accumulates dQ.
delta = rowsum(dO * O) is computed by XLA beforehand.

The sequence is zero-padded to whole blocks (keys past S are masked in the forward): a dynamic
slice at the edge would be clamped (shifted), not masked. In the backward padded queries carry
dO = 0 and padded keys K = V = 0, so they add nothing to the gradients of the real ones.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from workbench.kernels.registry import load_module
from workbench.kernels.shapes import refuse

_op = load_module("attention")

MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)
_SQUEEZED = pl.Squeezed() if hasattr(pl, "Squeezed") else None


def _dot(a, b, precision, *, trans_a: bool = False, trans_b: bool = False):
    """a @ b (a^T, b^T when asked), fp32 accumulation."""
    dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32, precision=precision)


def _causal_keep(q_start, k_start, block_q: int, block_k: int):
    q_pos = q_start + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 0)
    k_pos = k_start + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 1)
    return q_pos >= k_pos


# -- forward -------------------------------------------------------------------------------------
def _attn_fwd_kernel(q_ref, k_ref, v_ref, o_ref, lse_ref, *, sm_scale, causal, block_q, block_k, seq_len,
                     n_kv_blocks, precision):
    i = pl.program_id(2)
    q = q_ref[...]

    def body(j, carry):
        acc, m, l = carry
        start = pl.multiple_of(j * block_k, block_k)
        k = k_ref[pl.ds(start, block_k), :]
        v = v_ref[pl.ds(start, block_k), :]
        s = _dot(q, k, precision, trans_b=True) * sm_scale
        k_pos = start + jax.lax.broadcasted_iota(jnp.int32, (block_q, block_k), 1)
        keep = k_pos < seq_len
        if causal:
            keep = keep & _causal_keep(i * block_q, start, block_q, block_k)
        s = jnp.where(keep, s, MASK_VALUE)
        m_new = jnp.maximum(m, s.max(axis=1))
        p = jnp.exp(s - m_new[:, None])
        alpha = jnp.exp(m - m_new)
        l = l * alpha + p.sum(axis=1)
        acc = acc * alpha[:, None] + _dot(p.astype(v.dtype), v, precision)
        return acc, m_new, l

    d = q.shape[-1]
    init = (jnp.zeros((block_q, d), jnp.float32), jnp.full((block_q,), -jnp.inf, jnp.float32),
            jnp.zeros((block_q,), jnp.float32))
    upper = jnp.minimum(jax.lax.div((i + 1) * block_q + block_k - 1, block_k), n_kv_blocks) if causal else n_kv_blocks
    acc, m, l = jax.lax.fori_loop(0, upper, body, init)
    o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)
    lse_ref[...] = m + jnp.log(l)


# -- backward ------------------------------------------------------------------------------------
def _attn_bwd_dkdv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref, *, sm_scale, causal,
                          block_q, block_k, n_q_blocks, precision):
    j = pl.program_id(2)
    k = k_ref[...]
    v = v_ref[...]

    def body(i, carry):
        dk, dv = carry
        start = pl.multiple_of(i * block_q, block_q)
        q = q_ref[pl.ds(start, block_q), :]
        do = do_ref[pl.ds(start, block_q), :]
        lse = lse_ref[pl.ds(start, block_q)]
        delta = delta_ref[pl.ds(start, block_q)]
        p = jnp.exp(_dot(q, k, precision, trans_b=True) * sm_scale - lse[:, None])
        if causal:
            p = jnp.where(_causal_keep(start, j * block_k, block_q, block_k), p, 0.0)
        dv = dv + _dot(p.astype(do.dtype), do, precision, trans_a=True)
        ds = p * (_dot(do, v, precision, trans_b=True) - delta[:, None])
        dk = dk + _dot(ds.astype(q.dtype), q, precision, trans_a=True)
        return dk, dv

    d = k.shape[-1]
    init = (jnp.zeros((block_k, d), jnp.float32), jnp.zeros((block_k, d), jnp.float32))
    lower = jax.lax.div(j * block_k, block_q) if causal else 0
    dk, dv = jax.lax.fori_loop(lower, n_q_blocks, body, init)
    dk_ref[...] = (dk * sm_scale).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


def _attn_bwd_dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *, sm_scale, causal,
                        block_q, block_k, n_kv_blocks, precision):
    i = pl.program_id(2)
    q = q_ref[...]
    do = do_ref[...]
    lse = lse_ref[...]
    delta = delta_ref[...]

    def body(j, dq):
        start = pl.multiple_of(j * block_k, block_k)
        k = k_ref[pl.ds(start, block_k), :]
        v = v_ref[pl.ds(start, block_k), :]
        p = jnp.exp(_dot(q, k, precision, trans_b=True) * sm_scale - lse[:, None])
        if causal:
            p = jnp.where(_causal_keep(i * block_q, start, block_q, block_k), p, 0.0)
        ds = p * (_dot(do, v, precision, trans_b=True) - delta[:, None])
        return dq + _dot(ds.astype(k.dtype), k, precision)

    upper = jnp.minimum(jax.lax.div((i + 1) * block_q + block_k - 1, block_k), n_kv_blocks) if causal else n_kv_blocks
    dq = jax.lax.fori_loop(0, upper, body, jnp.zeros(q.shape, jnp.float32))
    dq_ref[...] = (dq * sm_scale).astype(dq_ref.dtype)


# -- wrappers --------------------------------------------------------------------------------------
def _geometry(s: int, interpret: bool) -> tuple[int, int, int]:
    """(block_q, block_k, padded sequence length)."""
    block_q, block_k = (32, 32) if interpret else (64, 64)
    sp = pl.cdiv(s, block_k) * block_k if interpret else max(block_k, pl.next_power_of_2(s))
    return block_q, block_k, sp


def _call(kernel, grid, inputs, in_blocks, out_shapes, out_blocks, interpret: bool, num_warps: int = 4):
    """pallas_call(kernel)(*inputs): its blocks are (rows, cols) or (rows,) of one (batch, head) at `index(i)`."""
    extra = {}
    if not interpret:
        from jax.experimental.pallas import triton as pltriton

        extra["compiler_params"] = pltriton.CompilerParams(num_warps=num_warps, num_stages=2)

    def spec(block):
        shape, index = block
        return pl.BlockSpec((_SQUEEZED, _SQUEEZED, *shape), lambda b, h, i: (b, h, *index(i)))

    return pl.pallas_call(kernel, out_shape=out_shapes, grid=grid, in_specs=[spec(b) for b in in_blocks],
                          out_specs=[spec(b) for b in out_blocks], interpret=interpret, **extra)(*inputs)


def _precision(dtype):
    return jax.lax.Precision.HIGHEST if dtype == jnp.float32 else None


def attention_fwd(q, k, v, causal: bool, interpret: bool):
    """(O, log-sum-exp of the scaled scores (B, H, S) fp32)."""
    b, h, s, d = q.shape
    block_q, block_k, sp = _geometry(s, interpret)
    if sp != s:  # queries too: the GPU lowering does not mask the stores of an overhanging block
        pad = ((0, 0), (0, 0), (0, sp - s), (0, 0))
        q, k, v = jnp.pad(q, pad), jnp.pad(k, pad), jnp.pad(v, pad)
    kernel = functools.partial(_attn_fwd_kernel, sm_scale=1.0 / math.sqrt(d), causal=causal, block_q=block_q,
                               block_k=block_k, seq_len=s, n_kv_blocks=sp // block_k, precision=_precision(q.dtype))
    q_block = ((block_q, d), lambda i: (i, 0))
    whole = ((sp, d), lambda i: (0, 0))
    o, lse = _call(kernel, (b, h, sp // block_q), (q, k, v), [q_block, whole, whole],
                   [jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, h, sp), jnp.float32)],
                   [q_block, ((block_q,), lambda i: (i,))], interpret)
    return o[:, :, :s], lse[:, :, :s]


def attention_bwd(q, k, v, o, lse, do, causal: bool, interpret: bool):
    b, h, s, d = q.shape
    block_q, block_k, sp = _geometry(s, interpret)
    delta = jnp.sum(o.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)
    do = do.astype(q.dtype)
    if sp != s:
        pad = ((0, 0), (0, 0), (0, sp - s), (0, 0))
        q, k, v, do = (jnp.pad(t, pad) for t in (q, k, v, do))
        lse, delta = (jnp.pad(t, ((0, 0), (0, 0), (0, sp - s))) for t in (lse, delta))
    params = dict(sm_scale=1.0 / math.sqrt(d), causal=causal, block_q=block_q, block_k=block_k,
                  precision=_precision(q.dtype))
    whole, whole_row = ((sp, d), lambda i: (0, 0)), ((sp,), lambda i: (0,))
    k_block = ((block_k, d), lambda i: (i, 0))
    dk, dv = _call(functools.partial(_attn_bwd_dkdv_kernel, n_q_blocks=sp // block_q, **params), (b, h, sp // block_k),
                   (q, k, v, do, lse, delta), [whole, k_block, k_block, whole, whole_row, whole_row],
                   [jax.ShapeDtypeStruct(k.shape, k.dtype)] * 2, [k_block, k_block], interpret)
    q_block, q_row = ((block_q, d), lambda i: (i, 0)), ((block_q,), lambda i: (i,))
    [dq] = _call(functools.partial(_attn_bwd_dq_kernel, n_kv_blocks=sp // block_k, **params), (b, h, sp // block_q),
                 (q, k, v, do, lse, delta), [q_block, whole, whole, q_block, q_row, q_row],
                 [jax.ShapeDtypeStruct(q.shape, q.dtype)], [q_block], interpret)
    return dq[:, :, :s], dk[:, :, :s], dv[:, :, :s]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention(q, k, v, causal: bool, interpret: bool):
    return attention_fwd(q, k, v, causal, interpret)[0]


def _attention_vjp_fwd(q, k, v, causal: bool, interpret: bool):
    refuse(_op.NAME, _op.check_grad_shape(tuple(q.shape)), grad=True)  # at trace time, before any kernel
    o, lse = attention_fwd(q, k, v, causal, interpret)
    return o, (q, k, v, o, lse)


def _attention_vjp_bwd(causal: bool, interpret: bool, saved, do):
    return attention_bwd(*saved, do, causal, interpret)


_attention.defvjp(_attention_vjp_fwd, _attention_vjp_bwd)


def attention(q, k, v, causal: bool = False, *, interpret: bool = False):
    """Attention of (B, H, S, D) arrays, D in 16/32/64/128, differentiable with jax.grad (dQ, dK, dV).

    Raises:
        InvalidRequest: shapes or dtypes that differ, or a shape the kernel cannot take.
    """
    refuse(_op.NAME, _op.inputs_problem(q, k, v))
    return _attention(q, k, v, causal, interpret)


def build(interpret: bool):
    return jax.jit(functools.partial(attention, interpret=interpret), static_argnames=("causal",))
