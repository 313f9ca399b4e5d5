"""Live notebook views over the facade (ipywidgets; anywidget for the loss plot).

    from workbench.widgets import FleetWidget, SliceRequestForm, JobProgress, ProfileView, KernelView
    FleetWidget(wb)            # nodes, GPUs, MIG slices and whose lease each part is; live
    SliceRequestForm(wb)       # kinds and MIG profiles valid for the chosen device; queue position
    JobProgress(job)           # state, elapsed, log tail, live loss plot, cancel; never blocks the kernel
    ProfileView(p, other)      # summary, top kernels, timeline, comparison
    KernelView(wb, results)    # check table and roofline
    EndpointView(endpoint)     # state, URL, live requests/s; the last bench's table and latency-vs-throughput plot

Each view calls `workbench.api.Workbench` only; live ones refresh in a background thread.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EndpointView", "FleetWidget", "JobProgress", "KernelView", "LossPlot", "ProfileView", "SliceRequestForm"]

_WHERE = {
    "FleetWidget": "workbench.widgets.fleet", "SliceRequestForm": "workbench.widgets.slice_form",
    "JobProgress": "workbench.widgets.job", "LossPlot": "workbench.widgets.loss_plot",
    "ProfileView": "workbench.widgets.profile", "KernelView": "workbench.widgets.kernel",
    "EndpointView": "workbench.widgets.serving",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'workbench.widgets' has no attribute {name!r}")
