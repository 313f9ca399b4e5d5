"""The kernel registry: the built-in kernels of the top-level `kernels/` folder and the user's own.

The folder is never imported as a package named `kernels` (a PyPI package has that name): each
module is loaded by path under a private name, `workbench._kernels.<op>`. An installed wheel
ships the folder as `workbench/_kernels`; a source checkout has it at the repository's root.
Loading a module imports neither triton nor jax: the kernels are built on first use, so that
Triton's interpreter can still be switched on (it must be, before triton is imported).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from workbench.errors import InvalidRequest, NotFound

BACKENDS = ("triton", "pallas")
DTYPES = ("float32", "float16", "bfloat16")
# torch.testing.assert_close's defaults (rtol, atol).
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}
# Gradients: measured over the check shapes (see GRADIENT_TOLERANCE_REASON); a kernel module may
# declare its own (GRAD_TOLERANCES) with the reason.
DEFAULT_GRAD_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-5),
    "float16": (2e-3, 2e-3),
    "bfloat16": (1.6e-2, 1.6e-2),
}
GRADIENT_TOLERANCE_REASON = (
    "gradients are compared with autograd of the reference run in fp64 (fp32 on a GPU) on the same "
    "inputs and incoming gradient: the kernel sums in fp32 in another order and rounds each gradient "
    "once to the input dtype. Measured on the check shapes (December 2026): fp16 within one rounding "
    "(4.8e-4 relative; 2^-11 = 4.9e-4), bf16 within one rounding (3.8e-3; 2^-8 = 3.9e-3), fp32 within "
    "3.8e-6 absolute; rtol and atol are about 4x those, so a real error (a wrong term, a missed row) fails"
)
PASSES = ("fwd", "bwd")
PRIVATE_PACKAGE = "workbench._kernels"


def kernels_dir() -> Path:
    """The folder holding the built-in kernel modules: the wheel's, else the checkout's."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_kernels", package_dir.parent / "kernels"):
        if candidate.is_dir() and any(candidate.glob("*.py")):
            return candidate
    raise NotFound(
        f"no kernels folder: looked for {package_dir / '_kernels'} (installed wheel) and "
        f"{package_dir.parent / 'kernels'} (source checkout)"
    )


def builtin_names() -> list[str]:
    return sorted(p.stem for p in kernels_dir().glob("*.py") if not p.stem.startswith("_"))


@cache
def load_module(name: str) -> ModuleType:
    """Load `kernels/<name>.py` by path as `workbench._kernels.<name>`."""
    path = kernels_dir() / f"{name}.py"
    if not path.is_file():
        raise NotFound(f"no built-in kernel {name!r}; built-in kernels: {', '.join(builtin_names())}")
    return _load_path(path, f"{PRIVATE_PACKAGE}.{name}")


@cache
def load_backend_module(name: str, backend: str) -> ModuleType:
    """Load `kernels/<backend>/<name>.py` (the Triton or Pallas kernels of one operation).

    These modules import their backend at the top, as Triton's tutorials and the Pallas ops do,
    so they are loaded only when a kernel is first built: after TRITON_INTERPRET is set.
    """
    path = kernels_dir() / backend / f"{name}.py"
    if not path.is_file():
        raise NotFound(f"no {backend} module for kernel {name!r} (looked for {path})")
    return _load_path(path, f"{PRIVATE_PACKAGE}.{backend}.{name}")


def _load_path(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


Shape = tuple[int, ...]


@dataclass
class KernelSpec:
    """One implementation of one operation on one backend, with what the harness needs to judge it.

    `build(interpret)` returns the callable (on torch tensors for triton, jax arrays for pallas);
    `reference` is the PyTorch (triton) or jax.numpy (pallas) function it must match; `framework`
    is the framework's own operation, the benchmark's baseline.
    """

    name: str
    backend: str
    build: Callable[[bool], Callable[..., Any]]
    reference: Callable[..., Any]
    make_inputs: Callable[..., tuple[Any, ...]]
    dtypes: tuple[str, ...] = DTYPES
    check_shapes: dict[str, list[Shape]] = field(default_factory=dict)
    bench_shapes: dict[str, list[Shape]] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ({},)
    bench_variants: tuple[dict[str, Any], ...] | None = None
    tolerances: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    check_shape: Callable[..., str | None] | None = None
    flops: Callable[..., int] | None = None
    bytes_moved: Callable[..., int] | None = None
    framework: Callable[..., Any] | None = None
    framework_name: str | None = None
    summary: str = ""
    bound: str | None = None
    source: str = "builtin"
    # The backward: whether the callable is differentiable (torch.autograd or jax.grad), and what
    # the harness needs to check and count it.
    has_backward: bool = False
    grad_check_shape: Callable[..., str | None] | None = None
    grad_flops: Callable[..., int] | None = None
    grad_bytes_moved: Callable[..., int] | None = None
    grad_tolerances: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    grad_names: tuple[str, ...] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.backend)

    def tolerance(self, dtype: str, pass_: str = "fwd") -> tuple[float, float, str | None]:
        if pass_ == "bwd":
            if dtype in self.grad_tolerances:
                return self.grad_tolerances[dtype]
            rtol, atol = DEFAULT_GRAD_TOLERANCES[dtype]
            return rtol, atol, GRADIENT_TOLERANCE_REASON
        if dtype in self.tolerances:
            rtol, atol, why = self.tolerances[dtype]
            return rtol, atol, why
        rtol, atol = DEFAULT_TOLERANCES[dtype]
        return rtol, atol, None

    def problem_with(self, shape: Shape, dtype: str, params: dict[str, Any], pass_: str = "fwd") -> str | None:
        """Why (shape, dtype) cannot be run by this kernel (its backward with pass_="bwd"), or None."""
        if dtype not in DEFAULT_TOLERANCES:
            return f"dtype {dtype!r} is not a dtype the harness knows; known: {', '.join(DEFAULT_TOLERANCES)}"
        if dtype not in self.dtypes:
            return f"dtype {dtype} is not supported; supported: {', '.join(self.dtypes)}"
        if pass_ == "bwd":
            if not self.has_backward:
                return self.no_backward()
            if self.grad_check_shape is not None:
                return self.grad_check_shape(tuple(shape), **params)
        if self.check_shape is not None:
            return self.check_shape(tuple(shape), **params)
        return None

    def no_backward(self) -> str:
        return (f"{self.name} ({self.backend}) has no backward: it was registered without one "
                f"(register it with differentiable=True once its callable works under "
                f"{'torch.autograd' if self.backend == 'triton' else 'jax.grad'})")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "backend": self.backend, "summary": self.summary, "dtypes": list(self.dtypes),
            "check_shapes": {k: [list(s) for s in v] for k, v in self.check_shapes.items()},
            "variants": list(self.variants), "framework": self.framework_name, "bound": self.bound,
            "source": self.source, "has_backward": self.has_backward,
        }


def builtin_spec(name: str, backend: str) -> KernelSpec:
    """The KernelSpec of a built-in kernel module for one backend."""
    if backend not in BACKENDS:
        raise InvalidRequest(f"backend {backend!r} is not known; backends: {', '.join(BACKENDS)}")
    module = load_module(name)
    torch_side = backend == "triton"
    framework_names = getattr(module, "FRAMEWORK", {})
    return KernelSpec(
        name=module.NAME,
        backend=backend,
        build=(lambda interpret: module.triton_kernel()) if torch_side else (lambda interpret: module.pallas_kernel(interpret)),
        reference=module.torch_reference if torch_side else module.jax_reference,
        framework=getattr(module, "torch_framework" if torch_side else "jax_framework", None),
        framework_name=framework_names.get("torch" if torch_side else "jax"),
        make_inputs=module.make_inputs,
        dtypes=tuple(module.DTYPES),
        check_shapes={k: [tuple(s) for s in v] for k, v in module.CHECK_SHAPES.items()},
        bench_shapes={k: [tuple(s) for s in v] for k, v in module.BENCH_SHAPES.items()},
        variants=tuple(getattr(module, "VARIANTS", ({},))),
        bench_variants=getattr(module, "BENCH_VARIANTS", None),
        tolerances=dict(getattr(module, "TOLERANCES", {})),
        check_shape=module.check_shape,
        flops=module.flops,
        bytes_moved=module.bytes_moved,
        summary=module.SUMMARY,
        bound=getattr(module, "BOUND", None),
        source=f"builtin:{Path(module.__file__ or module.__name__).name}",
        has_backward=hasattr(module, "grad_flops"),
        grad_check_shape=getattr(module, "check_grad_shape", None),
        grad_flops=getattr(module, "grad_flops", None),
        grad_bytes_moved=getattr(module, "grad_bytes_moved", None),
        grad_tolerances=dict(getattr(module, "GRAD_TOLERANCES", {})),
        grad_names=getattr(module, "GRAD_NAMES", None),
    )
