"""Export to ONNX with a parity check: torch (dynamo exporter) and JAX (jax2onnx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workbench.endpoints.export import compare_outputs, export
from workbench.endpoints.signature import read_signature
from workbench.errors import InvalidRequest


def test_torch_export_reports_parity_per_output_with_a_variable_batch(mlp_onnx: tuple[Path, Any]) -> None:
    path, _ = mlp_onnx
    signature = read_signature(path)
    assert [t.as_json() for t in signature.inputs] == [{"name": "input", "datatype": "FP32", "shape": [-1, 16]}]
    assert [t.as_json() for t in signature.outputs] == [{"name": "output", "datatype": "FP32", "shape": [-1, 4]}]
    assert signature.batchable


def test_torch_module_with_two_outputs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 3)

        def forward(self, x: Any) -> tuple[Any, Any]:
            y = self.linear(x)
            return y, torch.softmax(y, dim=-1)

    result = export(Two(), torch.randn(4, 8), tmp_path / "two.onnx")
    assert result.ok and [p.name for p in result.parity] == ["output_0", "output_1"]
    assert all(p.max_abs_err < 1e-5 for p in result.parity)
    assert result.as_json()["parity"][1]["ok"] is True


def test_jax_function_exports_through_jax2onnx(tmp_path: Path) -> None:
    pytest.importorskip("jax2onnx")
    import jax.numpy as jnp

    weights = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)

    def predict(x: Any) -> Any:
        return jnp.tanh(x @ weights)

    result = export(predict, np.ones((2, 16), np.float32), tmp_path / "jax.onnx")
    assert result.framework == "jax" and result.ok, result
    assert result.signature.inputs[0].shape == (-1, 16)


def test_parity_names_the_output_that_differs() -> None:
    want = [np.ones((3, 2), np.float32), np.zeros(3, np.float32)]
    got = [np.ones((3, 2), np.float32), np.array([0.0, 0.5, 0.0], np.float32)]
    first, second = compare_outputs(["logits", "score"], want, got)
    assert first.ok and first.max_abs_err == 0.0
    assert not second.ok and second.name == "score" and second.max_abs_err == pytest.approx(0.5)
    (wrong_shape,) = compare_outputs(["y"], [np.ones(3)], [np.ones(4)])
    assert not wrong_shape.ok


def test_bad_models_are_refused_with_a_reason(tmp_path: Path) -> None:
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a protobuf")
    with pytest.raises(InvalidRequest, match="not an ONNX model"):
        read_signature(not_onnx)
    with pytest.raises(InvalidRequest, match="does not exist"):
        read_signature(tmp_path / "missing.onnx")
    with pytest.raises(InvalidRequest, match="cannot export a int"):
        export(3, np.ones((1, 2)), tmp_path / "x.onnx")
