"""`KernelService`: what the facade promises about `wb.kernels`, as a Protocol.

`workbench.kernels.service.KernelService` satisfies it; faces and the facade are typed against
this, so a second implementation is a drop-in.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from workbench.kernels.harness import KernelResult, KernelResults
    from workbench.kernels.registry import KernelSpec
    from workbench.kernels.service import KernelList


class KernelService(Protocol):
    """The kernels of one Workbench: the registry, checks and benchmarks, stored results."""

    def list(self) -> KernelList: ...

    def names(self) -> builtins.list[str]: ...

    def spec(self, name: str, backend: str = "triton") -> KernelSpec: ...

    def get(self, name: str, backend: str = "triton") -> Callable[..., Any]: ...

    def register(
        self, name: str, backend: str = "triton", *, like: str | None = None,
        reference: Callable[..., Any] | None = None, make_inputs: Callable[..., tuple[Any, ...]] | None = None,
        shapes: Sequence[Sequence[int]] | None = None, dtypes: Sequence[str] | None = None,
        flops: Callable[..., int] | None = None, bytes_moved: Callable[..., int] | None = None,
        framework: Callable[..., Any] | None = None, variants: Sequence[dict[str, Any]] | None = None,
        tolerances: dict[str, tuple[float, float, str]] | None = None, summary: str = "",
        differentiable: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def check(
        self, name: str | Iterable[str] | None = None, backend: str | None = None,
        shapes: Iterable[Sequence[int] | str] | None = None, dtypes: Iterable[str] | None = None, *,
        passes: Iterable[str] | None = None, seed: int | None = None, save: bool = True,
    ) -> KernelResults: ...

    def bench(
        self, name: str | Iterable[str] | None = None, backend: str | None = None,
        shapes: Iterable[Sequence[int] | str] | None = None, dtypes: Iterable[str] | None = None, *,
        pass_: str = "fwd", baseline: bool = True, save: bool = True,
    ) -> KernelResults: ...

    def submit(
        self, name: str | Iterable[str] | None = None, backend: str | None = None, *, what: str = "check",
        slice: Any = "cpu", shapes: Iterable[Sequence[int] | str] | None = None,
        dtypes: Iterable[str] | None = None, passes: Iterable[str] | None = None, **job_options: Any,
    ) -> Any: ...

    def results(self, kernel: str | None = None, what: str | None = None,
                limit: int = 200) -> builtins.list[dict[str, Any]]: ...

    def roofline(self, results: Iterable[KernelResult] | None = None, *, device: str = "H100-80GB",
                 dtype: str = "float16", ax: Any = None) -> Any: ...

    def close(self) -> None: ...
