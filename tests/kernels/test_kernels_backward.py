"""Backward passes: gradients checked against autograd of the reference, refused where they cannot be taken.

Pallas runs here with interpret=True; Triton runs in its interpreter, in a child process (the
interpreter must be switched on before triton is imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from workbench.errors import InvalidRequest


def test_pallas_gradients_match_autograd_of_the_reference_with_the_measured_tolerances(wb) -> None:
    results = wb.kernels.check("layer_norm", backend="pallas", shapes=["33x513", "1x1"], dtypes=["float16", "float32"],
                               passes=["bwd"])
    assert len(results) == 4 and results.ok, results
    assert all(r.pass_ == "bwd" and r.as_json()["pass"] == "bwd" for r in results)
    fp16 = next(r for r in results if r.dtype == "float16")
    assert (fp16.rtol, fp16.atol) == (2e-3, 2e-3) and "Measured on the check shapes" in fp16.tolerance_reason
    assert "layer_norm backward (pallas, float16, 33x513)" in fp16.label
    stored = wb.kernels.results(kernel="layer_norm", what="check")
    assert {r["shape"] for r in stored} == {"33x513,pass=bwd", "1x1,pass=bwd"}


def test_a_check_runs_forward_and_backward_by_default(wb) -> None:
    results = wb.kernels.check("attention", backend="pallas", shapes=["1x2x77x64"], dtypes=["float16"])
    assert [(r.pass_, r.params["causal"]) for r in results] == [
        ("fwd", False), ("fwd", True), ("bwd", False), ("bwd", True)]
    assert results.ok, results


def _wrong_backward_softmax():
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def softmax(x):
        return jax.nn.softmax(x.astype(jnp.float32), axis=-1).astype(x.dtype)

    def fwd(x):
        y = softmax(x)
        return y, y

    def bwd(y, dy):  # forgets the "- sum(y * dy)" term
        return ((y * dy).astype(y.dtype),)

    softmax.defvjp(fwd, bwd)
    return softmax


def test_a_wrong_backward_fails_its_gradient_check_and_names_the_gradient(wb) -> None:
    wb.kernels.register("bad_grad_softmax", backend="pallas", like="softmax", shapes=[(3, 17)], dtypes=["float32"],
                        differentiable=True)(_wrong_backward_softmax())
    [fwd, bwd] = wb.kernels.check("bad_grad_softmax", backend="pallas")
    assert fwd.ok is True
    assert bwd.ok is False and "bad_grad_softmax backward (pallas, float32, 3x17): dx:" in bwd.error
    assert "values outside rtol=1e-05" in bwd.error


def test_a_kernel_registered_without_a_backward_says_so_when_differentiated(wb) -> None:
    import jax
    import jax.numpy as jnp

    wb.kernels.register("plain_softmax", backend="pallas", like="softmax", shapes=[(3, 17)])(
        lambda x: jax.nn.softmax(x, axis=-1))
    kernel = wb.kernels.get("plain_softmax", "pallas")
    x = jnp.ones((3, 17))
    assert kernel(x).shape == (3, 17)  # the forward runs
    with pytest.raises(InvalidRequest, match=r"plain_softmax \(pallas\) has no backward.*differentiable=True"):
        jax.grad(lambda a: kernel(a).sum())(x)
    [result] = wb.kernels.check("plain_softmax", backend="pallas", dtypes=["float32"], passes=["bwd"])
    assert result.ok is False and "has no backward" in result.error
    assert [r.pass_ for r in wb.kernels.check("plain_softmax", backend="pallas", dtypes=["float32"])] == ["fwd"]


def test_pallas_gradients_of_an_unsupported_shape_are_refused_before_any_kernel_runs(wb) -> None:
    import jax
    import jax.numpy as jnp

    softmax = wb.kernels.get("softmax", "pallas")
    wide = jnp.ones((2, 20000))
    assert softmax(wide).shape == (2, 20000)  # the forward takes rows this wide
    with pytest.raises(InvalidRequest, match=r"softmax gradient: gradients of rows of 20000 columns .* up to 16384"):
        jax.grad(lambda a: softmax(a).sum())(wide)  # raised while tracing: no kernel has run
    attention = wb.kernels.get("attention", "pallas")
    q = jnp.ones((1, 1, 8, 48))
    with pytest.raises(InvalidRequest, match="head_dim 48 is not supported; supported: 16, 32, 64, 128"):
        jax.grad(lambda a: attention(a, a, a).sum())(q)


def test_an_unknown_pass_is_refused(wb) -> None:
    with pytest.raises(InvalidRequest, match="pass 'sideways' is not known; passes: fwd, bwd"):
        wb.kernels.check("softmax", backend="pallas", passes=["sideways"])


def test_pallas_layer_norm_trains_under_jax_grad_like_the_reference(wb) -> None:
    """jax.grad through the kernel inside a jitted step: the same gradients as the reference's."""
    import jax
    import jax.numpy as jnp

    kernel, reference = wb.kernels.get("layer_norm", "pallas"), wb.kernels.spec("layer_norm", "pallas").reference
    rng = np.random.default_rng(0)
    x, w, b = (jnp.asarray(rng.standard_normal(s, dtype="float32")) for s in ((19, 40), (40,), (40,)))

    def loss(fn):
        return jax.jit(jax.grad(lambda w, b: (fn(x, w, b) ** 2).sum(), argnums=(0, 1)))

    for got, want in zip(loss(kernel)(w, b), loss(reference)(w, b), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


TRITON_SCRIPT = textwrap.dedent("""
    import os
    os.environ["TRITON_INTERPRET"] = "1"
    import json, torch
    from workbench import Workbench
    from workbench.errors import InvalidRequest

    wb = Workbench(home=os.environ["WB_TEST_HOME"])
    out = {}
    attention = wb.kernels.get("attention", "triton")
    reference = wb.kernels.spec("attention", "triton").reference
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 45, 32, requires_grad=True) for _ in range(3))
    for causal in (False, True):
        got = torch.autograd.grad(attention(q, k, v, causal=causal).square().sum(), (q, k, v))
        want = torch.autograd.grad(reference(q, k, v, causal=causal).square().sum(), (q, k, v))
        out[f"causal={causal}"] = max(float((a - b).abs().max()) for a, b in zip(got, want))
    try:
        wb.kernels.get("rms_norm", "triton")(torch.ones(2, 20000, requires_grad=True), torch.ones(20000))
    except InvalidRequest as exc:
        out["wide"] = str(exc)
    with torch.no_grad():  # no gradient wanted: the forward takes the shape
        out["wide_no_grad"] = list(wb.kernels.get("rms_norm", "triton")(torch.ones(2, 20000), torch.ones(20000)).shape)
    wb.kernels.register("plain_double", backend="triton", reference=lambda x: x * 2,
                        make_inputs=lambda shape, rng: (rng.standard_normal(shape, dtype="float32"),))(lambda x: x * 2)
    try:
        wb.kernels.get("plain_double", "triton")(torch.ones(3, requires_grad=True))
    except InvalidRequest as exc:
        out["plain"] = str(exc)
    print("RESULT" + json.dumps(out))
""")


def test_triton_kernels_work_under_torch_autograd_and_refuse_what_they_cannot_differentiate(tmp_path) -> None:
    env = dict(os.environ, WB_TEST_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", TRITON_SCRIPT], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["causal=False"] < 1e-4 and out["causal=True"] < 1e-4, out
    assert "rms_norm gradient: gradients of rows of 20000 columns are not supported" in out["wide"]
    assert out["wide_no_grad"] == [2, 20000]
    assert "plain_double (triton) has no backward" in out["plain"]


def _workbench(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "workbench", "kernels", *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


def test_cli_checks_triton_gradients_and_benchmarks_the_backward() -> None:
    out = _workbench("check", "rms_norm", "--backend", "triton", "--pass", "bwd", "--dtype", "float32", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert len(results) == 5 and all(r["pass"] == "bwd" and r["ok"] is True for r in results)
    out = _workbench("bench", "attention", "--backend", "triton", "--pass", "bwd", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert {r["pass"] for r in results} == {"bwd"} and len(results) == 4  # causal and not, fp16 and bf16
    for r in results:
        b, h, s, d = 1, 2, 77, 64
        assert r["flops"] == (10 if not r["params"]["causal"] else 5) * b * h * s * s * d
        assert r["bytes"] == 8 * b * h * s * d * 2
        assert r["median_ms"] is None and "interpreter mode" in r["skipped_reason"]
