"""Workbench: GPU slices, JAX and PyTorch jobs on Dask, kernels and profiles, from notebooks.

    from workbench import Workbench
    wb = Workbench()

Imports are lazy so `import workbench` (and the CLI) stay fast: nothing heavy loads until used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.__about__ import __version__

if TYPE_CHECKING:
    from workbench.api import Workbench

__all__ = ["Workbench", "__version__", "artifacts_dir", "log"]


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.api import Workbench

        return Workbench
    if name in ("log", "artifacts_dir"):
        from workbench.jobs import context

        return getattr(context, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
