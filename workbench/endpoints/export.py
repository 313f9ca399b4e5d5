"""Export a PyTorch module or a JAX function to ONNX, and check the file answers what the model answers.

PyTorch goes through `torch.onnx.export(..., dynamo=True)` (the `torch.export` path; the
TorchScript exporter is deprecated), JAX through `jax2onnx`. The first dimension of every input is
exported as variable (`batch`), so the server can join requests into one batch. The parity check
runs the framework and ONNX Runtime on the same seeded inputs (a batch of another size than the
example, which also proves the batch dimension is really variable) and reports each output's
largest absolute and relative error.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.endpoints.signature import Signature, open_session, session_signature
from workbench.errors import InvalidRequest

PARITY_BATCH = 3  # the seeded inputs' batch size: not 1 and not the usual example's
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


@dataclass(frozen=True)
class OutputParity:
    """How far ONNX Runtime's output is from the framework's, for one output."""

    name: str
    max_abs_err: float
    max_rel_err: float
    ok: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "max_abs_err": self.max_abs_err, "max_rel_err": self.max_rel_err, "ok": self.ok}


@dataclass
class ExportResult:
    """An exported ONNX file, what it takes and returns, and its parity against the framework."""

    path: Path
    framework: str
    signature: Signature
    parity: list[OutputParity] = field(default_factory=list)
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL

    @property
    def ok(self) -> bool:
        return bool(self.parity) and all(p.ok for p in self.parity)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "framework": self.framework, "ok": self.ok, "rtol": self.rtol, "atol": self.atol,
            "parity": [p.as_json() for p in self.parity], **self.signature.as_json(),
        }

    def __repr__(self) -> str:
        errors = ", ".join(f"{p.name}: max abs {p.max_abs_err:.2e}" for p in self.parity)
        return f"<ExportResult {self.path.name} {self.framework} parity={'ok' if self.ok else 'FAILED'} ({errors})>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(p.name)}</td><td>{p.max_abs_err:.2e}</td><td>{p.max_rel_err:.2e}</td>"
            f"<td>{'ok' if p.ok else 'FAILED'}</td></tr>" for p in self.parity
        )
        return (
            f"<div class='workbench-export'><b>{html.escape(self.path.name)}</b> ({self.framework} → ONNX), "
            f"parity {'ok' if self.ok else 'FAILED'} at rtol={self.rtol:g}, atol={self.atol:g}"
            f"<table><tr><th>output</th><th>max abs err</th><th>max rel err</th><th></th></tr>{rows}</table></div>"
        )


def _as_tuple(example: Any) -> tuple[Any, ...]:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _seeded_like(example: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shape = (PARITY_BATCH, *example.shape[1:]) if example.ndim else example.shape
    if np.issubdtype(example.dtype, np.floating):
        return rng.standard_normal(shape).astype(example.dtype)
    if example.dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    low, high = (int(example.min()), int(example.max()) + 1) if example.size else (0, 2)
    return rng.integers(low, high, shape).astype(example.dtype)


def compare_outputs(names: Sequence[str], expected: Sequence[np.ndarray], got: Sequence[np.ndarray],
                    rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> list[OutputParity]:
    """Per output: the largest absolute and relative error, and whether all are within tolerance."""
    if len(expected) != len(got):
        raise InvalidRequest(f"the framework returned {len(expected)} outputs and the ONNX model {len(got)}")
    result = []
    for name, want, have in zip(names, expected, got, strict=True):
        want64, have64 = np.asarray(want, np.float64), np.asarray(have, np.float64)
        if want64.shape != have64.shape:
            result.append(OutputParity(name, float("inf"), float("inf"), False))
            continue
        diff = np.abs(want64 - have64)
        max_abs = float(diff.max()) if diff.size else 0.0
        max_rel = float((diff / np.maximum(np.abs(want64), np.finfo(np.float64).tiny)).max()) if diff.size else 0.0
        result.append(OutputParity(name, max_abs, max_rel, bool(np.allclose(have64, want64, rtol=rtol, atol=atol))))
    return result


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


def export(model: Any, example: Any, path: str | Path, *, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, seed: int = 0, rtol: float = DEFAULT_RTOL,
           atol: float = DEFAULT_ATOL) -> ExportResult:
    """Export `model` (a `torch.nn.Module`, or a JAX function of arrays) called on `example` (an
    array or a tuple of arrays, the first dimension being the batch) to the ONNX file `path`, then
    check parity on seeded inputs. Raises `InvalidRequest` when the model cannot be exported."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = _as_tuple(example)
    if not args:
        raise InvalidRequest("example is empty: give one array (or a tuple of arrays) the model is called on")
    names_in = list(input_names) if input_names else (["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))])
    if len(names_in) != len(args):
        raise InvalidRequest(f"{len(names_in)} input names for {len(args)} example inputs")
    if _is_torch_module(model):
        framework, run = "torch", _export_torch(model, args, path, names_in, output_names)
    elif callable(model):
        framework, run = "jax", _export_jax(model, args, path, names_in, output_names)
    else:
        raise InvalidRequest(f"cannot export a {type(model).__name__}: give a torch.nn.Module or a JAX function")
    session = open_session(path)
    signature = session_signature(session)
    rng = np.random.default_rng(seed)
    inputs = [_seeded_like(np.asarray(_to_numpy(a)), rng) for a in args]
    expected = run(inputs)
    got = session.run(None, {spec.name: x for spec, x in zip(signature.inputs, inputs, strict=True)})
    parity = compare_outputs([o.name for o in signature.outputs], expected, got, rtol, atol)
    return ExportResult(path, framework, signature, parity, rtol, atol)


def _default_output_names(out: Any) -> list[str]:
    return [f"output_{i}" for i in range(len(out))] if isinstance(out, (tuple, list)) else ["output"]


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _export_torch(model: Any, args: tuple[Any, ...], path: Path, input_names: list[str],
                  output_names: Sequence[str] | None) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    import torch

    tensors = tuple(a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a)) for a in args)
    model = model.eval()
    with torch.inference_mode():
        output_names = output_names or _default_output_names(model(*tensors))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = tuple({0: batch} if t.ndim else {} for t in tensors)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model, tensors, dynamo=True, input_names=input_names, output_names=list(output_names),
                dynamic_shapes=dynamic, verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the message is what matters
        raise InvalidRequest(f"torch.onnx.export could not export {type(model).__name__}: {str(exc).splitlines()[0][:400]}") from None
    assert program is not None
    program.save(str(path))

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = model(*(torch.from_numpy(x) for x in inputs))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().cpu().numpy() for o in outs]

    return run


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress, logs a warning per torchvision op it skips and raises
    FutureWarnings from torch internals: none of it is the user's business, and it would make
    a notebook's output differ on every run."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class _ShapeDtype:
    shape: tuple[int | str, ...]
    dtype: np.dtype[Any]


def _export_jax(fn: Callable[..., Any], args: tuple[Any, ...], path: Path, input_names: list[str],
                output_names: Sequence[str] | None) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    try:
        import jax
        from jax2onnx import to_onnx
    except ImportError as exc:
        raise InvalidRequest(f"exporting a JAX function needs jax and jax2onnx ({exc.name} is not installed)") from None
    del jax  # imported only to say clearly when it is missing
    # jax2onnx takes objects with `shape` (a named dimension is symbolic: the batch) and `dtype`.
    inputs = [_ShapeDtype(("B", *a.shape[1:]) if a.ndim else (), a.dtype) for a in map(np.asarray, args)]
    output_names = output_names or _default_output_names(fn(*map(np.asarray, args)))
    try:
        to_onnx(fn, inputs, input_names=input_names, output_names=list(output_names),
                return_mode="file", output_path=str(path))
    except Exception as exc:  # noqa: BLE001
        raise InvalidRequest(f"jax2onnx could not export {getattr(fn, '__name__', fn)!r}: {str(exc).splitlines()[0][:400]}") from None

    def run(batch: list[np.ndarray]) -> list[np.ndarray]:
        out = fn(*batch)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [np.asarray(o) for o in outs]

    return run
