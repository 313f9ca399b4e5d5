"""`LossPlot`: a small live line chart (anywidget) of one metric by step.

ipywidgets has no chart; a full plotting library in a widget would be heavy and re-render the
whole figure on each point. This draws an SVG polyline in the browser from two synced lists, so
appending a step sends two short lists and redraws in a millisecond.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

_ESM = r"""
function render({ model, el }) {
  const W = 560, H = 220, L = 52, R = 12, T = 22, B = 30;
  el.classList.add("wb-loss-plot");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.style.fontFamily = "system-ui, sans-serif"; svg.style.fontSize = "11px";
  el.appendChild(svg);
  const fmt = (v) => Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : (+v.toPrecision(3)).toString();
  function draw() {
    const xs = model.get("steps"), ys = model.get("values");
    const name = model.get("metric");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const text = (x, y, s, anchor = "middle", color = "#4a5568") => {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor);
      t.setAttribute("fill", color); t.textContent = s; svg.appendChild(t);
    };
    const frame = document.createElementNS(ns, "rect");
    frame.setAttribute("x", L); frame.setAttribute("y", T); frame.setAttribute("width", W - L - R);
    frame.setAttribute("height", H - T - B); frame.setAttribute("fill", "#f7fafc"); frame.setAttribute("stroke", "#e2e8f0");
    svg.appendChild(frame);
    text(L, 14, `${name} by step`, "start", "#1a202c");
    if (!xs.length) { text(W / 2, H / 2, "waiting for the first step…"); return; }
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = (x) => L + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", xs.map((x, i) => `${sx(x).toFixed(1)},${sy(ys[i]).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#0b5394"); line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
    text(L - 6, T + 4, fmt(y1), "end"); text(L - 6, H - B, fmt(y0), "end");
    text(L, H - 12, fmt(x0), "start"); text(W - R, H - 12, fmt(x1), "end");
    text((L + W - R) / 2, H - 4, "step");
    text(W - R, 14, `last ${fmt(ys[ys.length - 1])} at step ${xs[xs.length - 1]}`, "end", "#1a202c");
  }
  draw();
  model.on("change:steps", draw);
  model.on("change:values", draw);
}
export default { render };
"""


class LossPlot(anywidget.AnyWidget):
    """A live line of `metric` against step; call `update(steps, values)` from any thread."""

    _esm = _ESM
    steps = traitlets.List(traitlets.Float()).tag(sync=True)
    values = traitlets.List(traitlets.Float()).tag(sync=True)
    metric = traitlets.Unicode("loss").tag(sync=True)

    def update(self, steps: list[float], values: list[float]) -> None:
        if len(steps) == len(self.steps) and (not steps or steps[-1] == self.steps[-1]):
            return
        with self.hold_sync():
            self.steps = list(steps)
            self.values = list(values)

    def __repr__(self) -> str:
        last = f", last {self.values[-1]:.4g} at step {self.steps[-1]:g}" if self.steps else ""
        return f"<LossPlot {self.metric}: {len(self.steps)} steps{last}>"

    def _repr_keys(self) -> Any:  # keep ipywidgets' repr short in plain-text outputs
        return iter(())
