"""Kernels: the registry, check and benchmark results from the store, a check button, the roofline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
import param

from workbench.app.feed import Feed, Unavailable
from workbench.widgets.plots import roofline_figure
from workbench.widgets.render import error_html, esc

if TYPE_CHECKING:
    from workbench.kernels.harness import KernelResult

RESULT_COLUMNS = ["kernel", "backend", "what", "dtype", "shape", "ok", "max_abs_err", "median_ms", "gbps", "tflops",
                  "baseline_ms", "device_model", "skipped_reason"]
ROOFLINE_DEVICES = ("H100-80GB", "A100-80GB", "H200-141GB", "L4", "T4")


def registry_frame(kernels: Any) -> pd.DataFrame:
    return pd.DataFrame([
        {"kernel": k.name, "backend": k.backend, "dtypes": ", ".join(k.dtypes), "baseline": k.framework_name or "",
         "bound": k.bound or "", "source": k.source, "what": k.summary}
        for k in kernels
    ])


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = frame[[c for c in RESULT_COLUMNS if c in frame.columns]].copy()
    if "ok" in frame:
        frame["ok"] = [("pass" if v else "FAIL") if isinstance(v, bool) else "skipped" for v in frame["ok"]]
    for column in ("max_abs_err", "median_ms", "gbps", "tflops", "baseline_ms"):
        if column in frame:
            frame[column] = [f"{v:.3g}" if isinstance(v, float) and v == v else "" for v in frame[column]]
    return frame


def verdict_html(results: Sequence[KernelResult]) -> str:
    """"10 passed, 5 skipped (why)": a skipped case is neither a pass nor a failure, and says why."""
    passed = sum(1 for r in results if r.ok is True)
    failed = sum(1 for r in results if r.ok is False)
    skipped = [r for r in results if r.ok is None]
    parts = [f"{passed} passed"]
    if failed:
        parts.insert(0, f"{failed} failed")
    if skipped:
        reasons: dict[str, int] = {}
        for r in skipped:
            reason = r.skipped_reason or "no reason given"
            reasons[reason] = reasons.get(reason, 0) + 1
        why = "; ".join(f"{esc(reason)}" + (f" ×{n}" if n > 1 else "") for reason, n in reasons.items())
        parts.append(f"{len(skipped)} skipped <span class='wb-skip-why'>({why})</span>")
    color = "#c53030" if failed else ("#2f855a" if passed else "#4a5568")
    return f"<b style='color:{color}'>{', '.join(parts)}</b>"


def roofline_pane(wb: Any, device: str, dtype: str) -> pn.viewable.Viewable:
    try:
        figure = roofline_figure(wb, device, dtype)
    except Exception as exc:
        return pn.pane.HTML(error_html("No roofline", f"{type(exc).__name__}: {exc}"), sizing_mode="stretch_width")
    return pn.Column(pn.pane.Bokeh(figure, sizing_mode="stretch_width"), sizing_mode="stretch_width",
                     css_classes=["wb-roofline"])


class KernelsPage(param.Parameterized):
    title = "Kernels"

    def __init__(self, feed: Feed, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.body = pn.Column(sizing_mode="stretch_width")
        kernels = feed.kernels()
        if isinstance(kernels, Unavailable):
            self.body.append(pn.pane.HTML(error_html("Kernels are not available", kernels.reason),
                                          sizing_mode="stretch_width"))
            return
        names = sorted({k.name for k in kernels})
        self.kernel = pn.widgets.Select(label="Kernel", options=names, width=180)
        self.backend = pn.widgets.Select(label="Backend", options=sorted({k.backend for k in kernels}), width=120)
        self.check = pn.widgets.Button(label="Check against reference", button_type="primary", width=210,
                                       margin=(26, 10, 10, 10))
        self.check_status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-check-status"])
        self.check.on_click(self._check)
        self.results = pn.widgets.Tabulator(
            results_frame([]), show_index=False, disabled=True, sizing_mode="stretch_width", layout="fit_data_table",
            max_height=380, css_classes=["wb-kernel-results"],
        )
        self.device = pn.widgets.Select(label="Roofline of", options=list(ROOFLINE_DEVICES), width=160)
        self.dtype = pn.widgets.Select(label="dtype", options=["float16", "bfloat16", "float32"], width=120)
        self.roofline = pn.Column(roofline_pane(feed.wb, self.device.value, self.dtype.value))
        self.device.param.watch(self._roofline, "value")
        self.dtype.param.watch(self._roofline, "value")
        self.body.extend([
            pn.pane.HTML("<h3 style='margin:0'>Registry</h3>"),
            pn.widgets.Tabulator(registry_frame(kernels), show_index=False, disabled=True, sizing_mode="stretch_width",
                                 layout="fit_data_table", max_height=300),
            pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Check and benchmark results</h3>"),
            pn.Row(self.kernel, self.backend, self.check),
            self.check_status,
            self.results,
            pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Roofline</h3>"),
            pn.Row(self.device, self.dtype),
            self.roofline,
        ])
        self._last_rows: list[dict[str, Any]] | None = None
        self.refresh()

    def _roofline(self, *_: Any) -> None:
        self.roofline.objects = [roofline_pane(self.feed.wb, self.device.value, self.dtype.value)]

    async def _check(self, *_: Any) -> None:
        name, backend = self.kernel.value, self.backend.value
        self.check.disabled = True
        self.check_status.object = f"Checking <code>{esc(name)}</code> ({esc(backend)}) against its reference…"
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.feed.wb.kernels.check(name, backend=backend))
        except Exception as exc:
            self.check_status.object = error_html(f"Check of {name} ({backend}) failed to run", str(exc))
        else:
            self.check_status.object = (f"<div class='wb-check-verdict'>{esc(name)} ({esc(backend)}): "
                                        f"{verdict_html(results)}</div>")
        finally:
            self.check.disabled = False
            self.refresh()

    def refresh(self) -> None:
        if not hasattr(self, "results"):
            return
        try:
            rows = self.feed.wb.kernels.results(limit=200)
        except Exception as exc:
            self.check_status.object = error_html("Cannot read kernel results", str(exc))
            return
        if rows != self._last_rows:
            self._last_rows = rows
            self.results.value = results_frame(rows)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.body
