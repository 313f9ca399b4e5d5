"""Probe: which formulation of the Pallas (Triton-lowered) matmul keeps fp32 accumulation on a GPU.

The first GPU run (H100, jax 0.11.2) saw the K-looped Pallas matmul at 1024^3 miss fp16 and bf16
tolerances by about one rounding of a partial sum per K block. This compares variants against
an fp32 reference on the same inputs and prints max |err| for each.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton


def make(bk: int, stages: int, how: str):
    def kernel(a_ref, b_ref, o_ref):
        n_k = a_ref.shape[1] // bk

        def body(i, acc):
            a = a_ref[:, pl.ds(i * bk, bk)]
            b = b_ref[pl.ds(i * bk, bk), :]
            if how == "jnp.dot":
                return acc + jnp.dot(a, b, preferred_element_type=jnp.float32)
            if how == "dot_general":
                return acc + jax.lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
            if how == "upcast":
                return acc + jnp.dot(a.astype(jnp.float32), b.astype(jnp.float32), preferred_element_type=jnp.float32)
            raise ValueError(how)

        acc = jax.lax.fori_loop(0, n_k, body, jnp.zeros(o_ref.shape, jnp.float32))
        o_ref[...] = acc.astype(o_ref.dtype)

    @jax.jit
    def matmul(a, b):
        m, k = a.shape
        n = b.shape[1]
        return pl.pallas_call(
            kernel, out_shape=jax.ShapeDtypeStruct((m, n), a.dtype), grid=(m // 128, n // 128),
            in_specs=[pl.BlockSpec((128, k), lambda i, j: (i, 0)), pl.BlockSpec((k, 128), lambda i, j: (0, j))],
            out_specs=pl.BlockSpec((128, 128), lambda i, j: (i, j)),
            compiler_params=pltriton.CompilerParams(num_warps=8, num_stages=stages),
        )(a, b)

    return matmul


def main() -> None:
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((1024, 1024), dtype=np.float32)
    b32 = rng.standard_normal((1024, 1024), dtype=np.float32)
    for dtype in ("float16", "bfloat16"):
        a, b = jnp.asarray(a32).astype(dtype), jnp.asarray(b32).astype(dtype)
        ref = np.asarray(jnp.dot(a.astype(jnp.float32), b.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST))
        ref_rounded = np.asarray(jnp.asarray(ref).astype(dtype).astype(jnp.float32))
        xla = np.asarray(jnp.dot(a, b, preferred_element_type=jnp.float32).astype(dtype).astype(jnp.float32))
        print(f"{dtype}: XLA dot max|err| {np.abs(xla - ref_rounded).max():.4g}", flush=True)
        for bk, stages, how in [(64, 3, "jnp.dot"), (64, 1, "jnp.dot"), (64, 3, "dot_general"), (1024, 1, "jnp.dot"),
                                (64, 3, "upcast"), (32, 3, "jnp.dot")]:
            try:
                out = np.asarray(make(bk, stages, how)(a, b).astype(jnp.float32))
                err = np.abs(out - ref_rounded)
                print(f"  bk={bk:<5} stages={stages} {how:<12} max|err| {err.max():.4g}  values off by > 1e-3*|ref|+1e-5: "
                      f"{int((err > 1e-3 * np.abs(ref_rounded) + 1e-5).sum())}", flush=True)
            except Exception as exc:  # noqa: BLE001 - a variant the lowering rejects is a finding too
                print(f"  bk={bk:<5} stages={stages} {how:<12} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
