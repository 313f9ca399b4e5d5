"""Bokeh figures the notebook widgets and the dashboard share (interactive: zoom, hover)."""

from __future__ import annotations

import math
from typing import Any

from workbench.errors import InvalidRequest

# The kernels noun names dtypes as numpy does; the device catalog as datasheets do.
_CATALOG_DTYPE = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}


def measured_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Benchmark results from the store with both GB/s and TFLOP/s: intensity = FLOP/s / (byte/s)."""
    points = []
    for row in rows:
        gbps, tflops = row.get("gbps"), row.get("tflops")
        if row.get("what") != "bench" or not gbps or not tflops:
            continue
        points.append({"label": f"{row['kernel']} ({row['backend']}, {row.get('dtype')}) {row.get('shape')}",
                       "intensity": tflops * 1e12 / (gbps * 1e9), "tflops": float(tflops)})
    return points


def roofline_figure(wb: Any, device: str = "H100-80GB", dtype: str = "float16", *, height: int = 380) -> Any:
    """The device's roof from the catalog, the built-in kernels' ceilings and measured kernels."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    from workbench.inventory.catalog import lookup
    from workbench.kernels.roofline import attainable
    from workbench.kernels.roofline import roofline_points

    spec = lookup(device)
    peak = spec.peak_flops_for(_CATALOG_DTYPE.get(dtype, dtype))
    bandwidth = spec.memory_bandwidth_bps
    if not peak or not bandwidth:
        raise InvalidRequest(f"the catalog has no {dtype} peak or memory bandwidth for {device!r}; "
                             "try H100-80GB or A100-80GB")
    fig = figure(height=height, sizing_mode="stretch_width", x_axis_type="log", y_axis_type="log",
                 x_axis_label="arithmetic intensity (FLOP / byte)", y_axis_label="TFLOP/s",
                 title=f"Roofline of {spec.name} ({dtype}): {peak / 1e12:,.0f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s; "
                       f"ridge at {peak / bandwidth:,.0f} FLOP/byte",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    xs = [10 ** (e / 20) for e in range(-20, 81)]
    fig.line(xs, [attainable(x, peak, bandwidth) / 1e12 for x in xs], line_width=2, color="#1a202c", legend_label="roof")
    ceilings = [p for p in roofline_points(wb.kernels, None, dtype=dtype) if p["intensity"]]
    ceiling_source = ColumnDataSource({
        "x": [p["intensity"] for p in ceilings],
        "y": [attainable(p["intensity"], peak, bandwidth) / 1e12 for p in ceilings],
        "label": [p["label"] for p in ceilings],
    })
    fig.scatter("x", "y", source=ceiling_source, marker="inverted_triangle", size=11, color="#b7791f",
                legend_label="kernel ceilings (no timing here)")
    measured = measured_points(wb.kernels.results(what="bench", limit=500))
    measured_source = ColumnDataSource({
        "x": [p["intensity"] for p in measured], "y": [p["tflops"] for p in measured],
        "label": [p["label"] for p in measured],
    })
    fig.scatter("x", "y", source=measured_source, size=9, color="#0b5394", legend_label="measured")
    fig.add_tools(HoverTool(tooltips=[("kernel", "@label"), ("FLOP/byte", "@x{0.0}"), ("TFLOP/s", "@y{0.00}")]))
    fig.legend.location = "bottom_right"
    fig.legend.label_text_font_size = "11px"
    fig.y_range.start = max(1e-3, min([1.0, *(p["tflops"] for p in measured)]) / 2)
    fig.y_range.end = peak / 1e12 * 2
    fig.x_range.start, fig.x_range.end = 0.1, 10 ** math.ceil(math.log10(max(10_000, peak / bandwidth * 10)))
    return fig
