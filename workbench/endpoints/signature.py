"""What an ONNX file takes and returns, in the KServe v2 protocol's terms.

The inputs' and outputs' names, shapes and datatypes come from the file (an endpoint is deployed
from `MODEL.onnx` alone); a dimension that is a name or unknown is `-1` in a shape, as KServe v2
writes variable dimensions. The first dimension of every input being variable is what lets the
server join requests into one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InvalidRequest

# ONNX Runtime's type names (`tensor(float)`) to KServe v2 datatypes and numpy dtypes.
_ORT_TO_V2 = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
}
V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64), "FP16": np.dtype(np.float16),
    "INT64": np.dtype(np.int64), "INT32": np.dtype(np.int32), "INT16": np.dtype(np.int16), "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16), "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64), "BOOL": np.dtype(np.bool_),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: `shape` uses -1 for a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return V2_TO_NUMPY[self.datatype]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def batchable(self) -> bool:
        """Every input and output has a variable first dimension: requests can be stacked on it."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))

    def as_json(self) -> dict[str, Any]:
        return {"inputs": [t.as_json() for t in self.inputs], "outputs": [t.as_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(d["name"], d["datatype"], tuple(d["shape"])) for d in items)

        return cls(specs(data.get("inputs", [])), specs(data.get("outputs", [])))


def _spec(arg: Any) -> TensorSpec:
    datatype = _ORT_TO_V2.get(arg.type)
    if datatype is None:
        raise InvalidRequest(f"{arg.name} is a {arg.type}; the endpoint serves tensors of {', '.join(sorted(_ORT_TO_V2))}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


def session_signature(session: Any) -> Signature:
    return Signature(tuple(_spec(a) for a in session.get_inputs()), tuple(_spec(a) for a in session.get_outputs()))


def open_session(path: str | Path, providers: list[Any] | None = None, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on `path`; a file that is not ONNX is `InvalidRequest`."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"model file {path} does not exist; give the path of an .onnx file")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidRequest(f"{path} is not an ONNX model that ONNX Runtime can load: {first}") from None


def read_signature(path: str | Path) -> Signature:
    """The inputs and outputs of the ONNX file at `path` (raises `InvalidRequest` if it is not one)."""
    return session_signature(open_session(path))
