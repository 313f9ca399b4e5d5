"""Kernels: the registry of Triton and Pallas kernels and the harness that checks and times them.

`wb.kernels` (a `KernelService`) is the entry point; the kernels themselves live in the
top-level `kernels/` folder, one module per operation.
"""

from workbench.kernels.harness import KernelResult, KernelResults
from workbench.kernels.registry import KernelSpec
from workbench.kernels.roofline import place_on_roofline

__all__ = ["KernelResult", "KernelResults", "KernelSpec", "place_on_roofline"]
