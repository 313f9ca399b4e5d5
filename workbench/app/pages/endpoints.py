"""Endpoints: every served model (state, URL, slice, requests/s), and the selected one's last bench
as a latency-vs-throughput plot."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from workbench.app.feed import Feed, Unavailable
from workbench.widgets.render import error_html
from workbench.widgets.serving import bench_html, latency_throughput_figure

COLUMNS = ["id", "name", "owner", "state", "url", "slice", "req/s", "bench p50 ms (c=1)", "reason"]


def endpoints_frame(endpoints: list[Any], stats: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for ep in endpoints:
        first = min((ep.last_bench or {}).get("results") or [{}], key=lambda r: r.get("concurrency", 0))
        rate = stats.get(ep.id, {}).get("rps")
        rows.append({
            "id": ep.id, "name": ep.name, "owner": ep.owner, "state": ep.state, "url": ep.url or "", "slice": ep.lease_id,
            "req/s": f"{rate:.1f}" if rate is not None else "", "reason": (ep.reason or "") if not ep.live else "",
            "bench p50 ms (c=1)": f"{first['p50_ms']:.2f}" if first.get("p50_ms") else "",
        })
    return pd.DataFrame(rows, columns=COLUMNS)


class EndpointsPage(param.Parameterized):
    title = "Endpoints"
    selected = param.String(default="")

    def __init__(self, feed: Feed, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.status = pn.pane.HTML("", sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(
            endpoints_frame([], {}), show_index=False, disabled=True, sizing_mode="stretch_width",
            layout="fit_data_table", selectable=1, css_classes=["wb-endpoints"],
        )
        self.table.on_click(self._select)
        self.detail = pn.Column(sizing_mode="stretch_width", css_classes=["wb-endpoint-detail"])
        self._endpoints: list[Any] = []
        self._shown: tuple[str, str] | None = None
        self.refresh()

    def _select(self, event: Any) -> None:
        frame = self.table.value
        if 0 <= event.row < len(frame):
            self.selected = str(frame.iloc[event.row]["id"])
            self._detail()

    def refresh(self) -> None:
        endpoints = self.feed.endpoints()
        if isinstance(endpoints, Unavailable):
            self.status.object = error_html("Endpoints are not available", endpoints.reason)
            return
        self.status.object = "" if endpoints else "<div class='wb-empty'>no endpoints: <code>wb.endpoints.deploy(...)</code></div>"
        self._endpoints = endpoints
        stats = {ep.id: self.feed.endpoint_stats(ep.id) for ep in endpoints if ep.live and ep.owner == self.feed.wb.user}
        frame = endpoints_frame(endpoints, stats)
        if not frame.equals(self.table.value):
            self.table.value = frame
        if not self.selected and endpoints:
            self.selected = endpoints[-1].id
        self._detail()

    def _detail(self) -> None:
        ep = next((e for e in self._endpoints if e.id == self.selected), None)
        key = (ep.id, repr(ep.last_bench)) if ep is not None else None
        if key == self._shown:
            return
        self._shown = key
        if ep is None:
            self.detail.objects = []
            return
        objects: list[Any] = [pn.pane.HTML(f"<h3 style='margin:8px 0 0 0'>{ep.name}: last bench</h3>"
                                           + bench_html(ep.last_bench or {}), sizing_mode="stretch_width")]
        if (ep.last_bench or {}).get("results"):
            objects.append(pn.pane.Bokeh(latency_throughput_figure(ep.last_bench), sizing_mode="stretch_width"))
        self.detail.objects = objects

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.status, self.table, self.detail, sizing_mode="stretch_width")
