"""`EndpointView`: an endpoint's state, URL and live requests/s, and its last bench as a table and a
latency-vs-throughput plot (the figure the dashboard's Endpoints page shows too)."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from workbench.widgets.profile import _bokeh_output
from workbench.widgets.render import esc


def latency_throughput_figure(bench: dict[str, Any], *, height: int = 320) -> Any:
    """p50 and p99 latency against requests/s, one point per concurrency, and the raw
    `session.run` p50 as a line: where the endpoint's time goes as load rises."""
    from bokeh.models import ColumnDataSource, HoverTool, Span
    from bokeh.plotting import figure

    rows = bench.get("results") or []
    source = ColumnDataSource({
        "rps": [r["rps"] for r in rows], "p50": [r["p50_ms"] for r in rows], "p99": [r["p99_ms"] for r in rows],
        "concurrency": [str(r["concurrency"]) for r in rows],
    })
    fig = figure(height=height, sizing_mode="stretch_width", x_axis_label="requests/s", y_axis_label="latency (ms)",
                 title="latency vs throughput (one point per concurrency)", toolbar_location="above")
    fig.line("rps", "p50", source=source, legend_label="p50", line_width=2, color="#0b5394")
    fig.scatter("rps", "p50", source=source, size=9, color="#0b5394")
    fig.line("rps", "p99", source=source, legend_label="p99", line_width=2, color="#c05621", line_dash="dashed")
    fig.scatter("rps", "p99", source=source, size=7, color="#c05621")
    fig.text("rps", "p50", text="concurrency", source=source, x_offset=6, y_offset=-4, text_font_size="11px")
    baseline = (bench.get("baseline") or {}).get("p50_ms")
    if baseline is not None:
        fig.add_layout(Span(location=baseline, dimension="width", line_color="#718096", line_dash="dotted"))
    fig.add_tools(HoverTool(tooltips=[("concurrency", "@concurrency"), ("req/s", "@rps{0}"), ("p50 ms", "@p50{0.00}"),
                                      ("p99 ms", "@p99{0.00}")]))
    fig.legend.location = "top_left"
    return fig


def bench_html(bench: dict[str, Any]) -> str:
    rows = bench.get("results") or []
    if not rows:
        return "<div class='wb-empty'>no bench yet: <code>endpoint.bench()</code></div>"
    body = "".join(
        f"<tr><td>{r['concurrency']}</td><td>{r['requests']}</td><td>{r['rps']:.0f}</td><td>{r['p50_ms']:.2f}</td>"
        f"<td>{r['p95_ms']:.2f}</td><td>{r['p99_ms']:.2f}</td><td>{r['p99_ms'] / r['p50_ms']:.2f}</td></tr>"
        for r in rows if r["p50_ms"]
    )
    head = "".join(f"<th>{h}</th>" for h in ("concurrency", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99/p50"))
    base = bench.get("baseline") or {}
    note = f"raw session.run: p50 {base.get('p50_ms', float('nan')):.3f} ms" if base else ""
    return f"<div class='wb-bench'><table><tr>{head}</tr>{body}</table>{esc(note)}</div>"


class EndpointView(w.VBox):
    """`EndpointView(endpoint)`: live state and requests/s (refreshed every `refresh_s` in a
    background thread until the endpoint stops), then the last bench's table and plot."""

    def __init__(self, endpoint: Any, *, refresh_s: float = 2.0) -> None:
        self.endpoint = endpoint
        self._status = w.HTML(self._status_html({}))
        bench = endpoint.last_bench or {}
        children: list[Any] = [self._status, w.HTML(bench_html(bench))]
        if bench.get("results"):
            children.append(_bokeh_output(lambda: latency_throughput_figure(bench)))
        super().__init__(children)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(refresh_s,), daemon=True, name="workbench-endpoint-view")
        self._thread.start()

    def _status_html(self, stats: dict[str, float]) -> str:
        ep = self.endpoint
        rps = f"{stats['rps']:.1f} req/s (last 10 s), {stats['requests']:.0f} served" if stats else "–"
        return (f"<div class='wb-endpoint'><b>{esc(ep.name)}</b> <code>{esc(ep.id)}</code> — <b>{esc(ep.state)}</b>"
                f"<br>URL: <code>{esc(ep.url or '–')}/v2/models/{esc(ep.name)}</code><br>{esc(rps)}</div>")

    def _poll(self, refresh_s: float) -> None:
        while not self._stop.wait(refresh_s):
            try:
                self.endpoint.refresh()
                stats = self.endpoint._svc().stats(self.endpoint.id) if self.endpoint.live else {}
            except Exception:  # noqa: BLE001 - the view keeps its last state; the next tick tries again
                continue
            self._status.value = self._status_html(stats)
            if not self.endpoint.live:
                return

    def close(self) -> None:
        self._stop.set()
        super().close()
