"""The roofline: what a kernel of a given arithmetic intensity can reach on a device of the catalog.

attainable FLOP/s = min(peak FLOP/s of the dtype, intensity x memory bandwidth). Measured kernels
(GPU benchmarks) are drawn as points at their achieved TFLOP/s; kernels without timings (checked
in an interpreter) are drawn as markers on the roof at their intensity, i.e. their ceiling; a
kernel with a backward is drawn twice, forward and backward (its own FLOP and byte counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidRequest

if TYPE_CHECKING:
    from workbench.kernels.harness import KernelResult

# Representative sizes used to place each built-in kernel when no result is given.
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


def roofline_points(service: Any, results: Iterable[Any] | None, *, dtype: str) -> list[dict[str, Any]]:
    """(kernel, backend, intensity, achieved TFLOP/s or None) for each kernel or result."""
    if results is not None:
        return [
            {"label": f"{r.kernel}{' bwd' if r.pass_ == 'bwd' else ''} ({r.backend}) {r.shape}",
             "intensity": r.arithmetic_intensity, "tflops": r.tflops}
            for r in results if r.arithmetic_intensity
        ]
    points = []
    for spec in service.list():
        if spec.backend != "triton" or not spec.flops or not spec.bytes_moved:
            continue
        shapes = spec.bench_shapes.get("gpu") or spec.check_shapes.get("gpu") or []
        variants = spec.bench_variants or spec.variants
        counts = [("", spec.flops, spec.bytes_moved)]
        if spec.grad_flops and spec.grad_bytes_moved:
            counts.append((" bwd", spec.grad_flops, spec.grad_bytes_moved))
        for shape in shapes[:1]:
            params = dict(variants[0])
            for which, count_flops, count_bytes in counts:
                intensity = count_flops(shape, **params) / count_bytes(shape, _ITEMSIZE[dtype], **params)
                label = (f"{spec.name}{which} {'x'.join(map(str, shape))}"
                         + "".join(f" {k}={v}" for k, v in params.items()))
                points.append({"label": label, "intensity": intensity, "tflops": None})
    return points


def plot_roofline(service: Any, results: Iterable[Any] | None, *, device: str, dtype: str, ax: Any = None) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    from workbench.inventory.catalog import lookup

    spec = lookup(device)
    peak = spec.peak_flops_for(CATALOG_DTYPES.get(dtype, dtype))
    bandwidth = spec.memory_bandwidth_bps
    if not peak or not bandwidth:
        raise InvalidRequest(f"the catalog has no {dtype} peak or memory bandwidth for {device!r}; try H100-80GB or A100-80GB")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    ridge = peak / bandwidth
    intensities = np.logspace(-1, 4, 200)
    ax.loglog(intensities, np.minimum(peak, intensities * bandwidth) / 1e12, color="black", lw=2,
              label=f"{spec.name} {dtype}: {peak / 1e12:.0f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s")
    ax.axvline(ridge, color="grey", ls=":", lw=1)
    for point in roofline_points(service, results, dtype=dtype):
        roof = min(peak, point["intensity"] * bandwidth) / 1e12
        if point["tflops"] is None:
            ax.scatter([point["intensity"]], [roof], marker="v", s=50, label=f"{point['label']} (ceiling)")
        else:
            ax.scatter([point["intensity"]], [point["tflops"]], marker="o", s=50,
                       label=f"{point['label']}: {point['tflops']:.1f} TFLOP/s ({point['tflops'] / roof:.0%} of roof)")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"Roofline of {spec.name} ({dtype}); ridge at {ridge:.0f} FLOP/byte")
    ax.legend(fontsize=7, loc="lower right")
    return ax.figure


CATALOG_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def place_on_roofline(result: KernelResult, device_spec: Any, measured_gbps: float | None = None) -> KernelResult:
    """Fill the roofline fields of a timed result from a catalog DeviceSpec (and a measured bandwidth).

    attainable = min(peak FLOP/s of the dtype, intensity x memory bandwidth); the fractions are
    the achieved figures over the catalog's.
    """
    if device_spec is None:
        return result
    bandwidth = device_spec.memory_bandwidth_bps
    peak = device_spec.peak_flops_for(CATALOG_DTYPES.get(result.dtype, result.dtype))
    if bandwidth:
        result.peak_gbps = bandwidth / 1e9
        if result.gbps is not None:
            result.fraction_of_peak_bandwidth = result.gbps / result.peak_gbps
    if peak:
        result.peak_tflops = peak / 1e12
        if result.tflops is not None:
            result.fraction_of_peak_flops = result.tflops / result.peak_tflops
    if bandwidth and peak and result.arithmetic_intensity:
        result.attainable_tflops = min(peak, result.arithmetic_intensity * bandwidth) / 1e12
        if result.tflops is not None:
            result.fraction_of_roofline = result.tflops / result.attainable_tflops
    if measured_gbps:
        result.measured_gbps = measured_gbps
        if result.gbps is not None:
            result.fraction_of_measured_bandwidth = result.gbps / measured_gbps
    return result


def attainable(intensity: float, peak_flops: float, bandwidth_bps: float) -> float:
    """The roofline: the FLOP/s a kernel of this arithmetic intensity can reach."""
    return min(peak_flops, intensity * bandwidth_bps)
