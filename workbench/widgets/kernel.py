"""`KernelView`: a kernel check's table (pass, fail, skipped with the reason) and the roofline."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.widgets.profile import _bokeh_output
from workbench.widgets.render import esc


def results_html(results: Any) -> str:
    rows = []
    for r in results:
        verdict = ("<b style='color:#2f855a'>pass</b>" if r.ok else "<b style='color:#c53030'>FAIL</b>") \
            if r.ok is not None else "<span style='color:#718096'>skipped</span>"
        err = f"{r.max_abs_err:.3g}" if r.max_abs_err is not None else ""
        why = r.error or r.skipped_reason or r.tolerance_reason or ""
        timing = f"{r.median_ms:.3g} ms" if r.median_ms is not None else ""
        rows.append(f"<tr><td>{esc(r.kernel)}</td><td>{esc(r.backend)}</td><td>{esc(r.dtype)}</td>"
                    f"<td>{esc(r.shape)}</td><td>{verdict}</td><td>{err}</td><td>{timing}</td>"
                    f"<td style='max-width:420px'>{esc(why)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("kernel", "backend", "dtype", "shape", "result", "max |err|", "time", "note"))
    failed = sum(1 for r in results if r.ok is False)
    verdict = f"{len(results)} cases, {failed} failed" if failed else f"{len(results)} cases, none failed"
    return f"<div class='wb-kernel-check'><b>{verdict}</b><table><tr>{head}</tr>{''.join(rows)}</table></div>"


class KernelView(w.VBox):
    """`KernelView(wb, results)`: the check/bench table, then the roofline of `device`."""

    def __init__(self, wb: Any, results: Any, *, device: str = "H100-80GB", dtype: str = "float16") -> None:
        from workbench.widgets.plots import roofline_figure

        self.results = results
        super().__init__([w.HTML(results_html(results)),
                          _bokeh_output(lambda: roofline_figure(wb, device, dtype))])
