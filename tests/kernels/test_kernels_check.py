"""The harness on CPU: Pallas in interpret mode here, Triton's interpreter in a worker process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def test_pallas_softmax_matches_its_reference_on_every_dtype(wb) -> None:
    results = wb.kernels.check("softmax", backend="pallas")
    assert [r.pass_ for r in results] == ["fwd"] * 5 * 3 + ["bwd"] * 5 * 3  # the gradients too, by default
    assert all(r.ok is True for r in results), results
    assert {r.dtype for r in results} == {"float32", "float16", "bfloat16"}
    assert all(r.interpreted and r.rtol is not None for r in results)
    f32 = next(r for r in results if r.dtype == "float32")
    assert (f32.rtol, f32.atol) == (1.3e-6, 1e-5)
    f32_grad = next(r for r in results if r.dtype == "float32" and r.pass_ == "bwd")
    assert (f32_grad.rtol, f32_grad.atol) == (1e-5, 1e-5)


def test_builtin_triton_runs_in_an_interpreter_process_and_skips_bf16(wb) -> None:
    results = wb.kernels.check(["rms_norm", "matmul"], backend="triton", shapes=None, dtypes=["float32", "bfloat16"])
    assert [r for r in results if r.ok is False] == []
    bf16 = [r for r in results if r.dtype == "bfloat16"]
    assert bf16 and all(r.ok is None and "interpreter mishandles bfloat16" in r.skipped_reason for r in bf16)
    f32 = [r for r in results if r.dtype == "float32"]
    assert f32 and all(r.ok is True and r.max_abs_err is not None for r in f32)
    stored = wb.kernels.results(kernel="matmul", what="check")
    assert len(stored) == len([r for r in results if r.kernel == "matmul"])


def test_bad_requests_fail_with_the_kernel_the_shape_and_the_problem_and_the_rest_runs(wb) -> None:
    results = wb.kernels.check("softmax", backend="pallas", shapes=["3x4x5", "3x17"], dtypes=["float32", "int8"],
                               passes=["fwd"])
    by_case = {(r.shape, r.dtype): r for r in results}
    assert by_case[("3x17", "float32")].ok is True
    bad_shape = by_case[("3x4x5", "float32")]
    assert bad_shape.ok is False and "softmax (pallas, float32, 3x4x5)" in bad_shape.error and "got 3-D" in bad_shape.error
    assert "int8" in by_case[("3x17", "int8")].error
    assert not results.ok and len(results.failed) == 3


def _pallas_softmax_variant(mode: str):
    import jax
    import jax.numpy as jnp

    def softmax(x):
        if mode == "raises":
            raise RuntimeError("boom")
        if mode == "wrong_shape":
            return x[:, :1]
        if mode == "wrong_values":
            return jax.nn.softmax(x, axis=0)
        return jax.nn.softmax(x.astype(jnp.float32), axis=-1).astype(x.dtype)

    return softmax


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("raises", "raised RuntimeError: boom"), ("wrong_shape", "returned shape (3, 1)"),
     ("wrong_values", "values outside rtol=1.3e-06")],
)
def test_a_broken_user_kernel_is_reported_case_by_case(wb, mode: str, expected: str) -> None:
    wb.kernels.register(f"my_softmax_{mode}", backend="pallas", like="softmax", shapes=[(3, 17), (1, 1)],
                        dtypes=["float32"])(_pallas_softmax_variant(mode))
    results = wb.kernels.check(f"my_softmax_{mode}", backend="pallas")
    assert len(results) == 2
    first = results[0]
    assert first.ok is False
    assert f"my_softmax_{mode} (pallas, float32, 3x17)" in first.error and expected in first.error


def test_a_correct_user_kernel_gets_check_and_bench(wb) -> None:
    wb.kernels.register("my_softmax", backend="pallas", like="softmax", shapes=[(3, 17), (65, 130)])(
        _pallas_softmax_variant("right"))
    assert ("my_softmax", "pallas") in {(k.name, k.backend) for k in wb.kernels.list()}
    assert wb.kernels.check("my_softmax", backend="pallas").ok
    bench = wb.kernels.bench("my_softmax", backend="pallas")
    assert len(bench) == 2  # fp16 and bf16 at the last shape
    for r in bench:
        assert r.median_ms is None and r.gbps is None and r.tflops is None
        assert "interpreter mode" in r.skipped_reason
        assert r.flops == 5 * 65 * 130 and r.bytes == 2 * 65 * 130 * 2


def test_register_without_a_reference_is_refused(wb) -> None:
    from workbench.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="like=<built-in kernel>"):
        wb.kernels.register("orphan", backend="pallas")


def test_a_user_triton_kernel_from_a_notebook_like_process(tmp_path) -> None:
    """The notebook's recipe: TRITON_INTERPRET=1 before triton, a kernel in a cell, register, check."""
    code = textwrap.dedent(f"""
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        import torch, triton, triton.language as tl
        from workbench import Workbench

        @triton.jit
        def _scale(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask) * 2.0, mask=mask)

        def double(x):
            y = torch.empty_like(x)
            _scale[(triton.cdiv(x.numel(), 64),)](x, y, x.numel(), BLOCK=64)
            return y

        def bad(x):
            return x

        wb = Workbench(home={str(tmp_path)!r})
        common = dict(reference=lambda x: x * 2, make_inputs=lambda shape, rng: (rng.standard_normal(shape, dtype="float32"),),
                      shapes=[(1,), (1000,)], dtypes=["float32", "float16", "bfloat16"])
        wb.kernels.register("double", backend="triton", **common)(double)
        wb.kernels.register("bad_double", backend="triton", **common)(bad)
        good = wb.kernels.check("double", backend="triton")
        assert [r.ok for r in good] == [True, True, None, True, True, None], good
        worse = wb.kernels.check("bad_double", backend="triton")
        assert [r.ok for r in worse] == [False, False, None, False, False, None], worse
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OK" in out.stdout


def test_the_harness_measures_errors_in_float64() -> None:
    import numpy as np

    from workbench.kernels.harness import _compare, _JaxSide

    side = _JaxSide()
    import jax.numpy as jnp

    ref = jnp.asarray(np.array([1.0, 2.0, 0.0], dtype=np.float32))
    out = jnp.asarray(np.array([1.0, 2.0 + 1e-3, 0.0], dtype=np.float32))
    ok, max_abs, _, why = _compare(side, out, ref, 1.3e-6, 1e-5)
    assert not ok and max_abs == pytest.approx(1e-3, rel=1e-3) and "1 of 3 values" in why
    nan = jnp.asarray(np.array([1.0, np.nan, 0.0], dtype=np.float32))
    ok, *_, why = _compare(side, nan, ref, 1.3e-6, 1e-5)
    assert not ok and "1 NaN values" in why
