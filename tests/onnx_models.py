"""Small ONNX models written with onnx's helpers, for the faces' tests that need an endpoint but
not the exporter (the endpoints tests export real torch modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LINEAR_WEIGHTS = np.arange(64, dtype=np.float32).reshape(16, 4) / 64


def linear_onnx(path: Path) -> Path:
    """`output = input @ LINEAR_WEIGHTS`, input FP32 [batch, 16], output FP32 [batch, 4]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["output"])], "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(LINEAR_WEIGHTS, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
