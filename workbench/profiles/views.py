"""Views of a profile: a Bokeh timeline with level of detail, plots of the analyses, and export of
a time slice back to Chrome trace JSON (for Perfetto / chrome://tracing).

The timeline stays responsive over 100k+ events because the browser never draws them all: at
any zoom it shows *blocks* (each lane's events merged where they are closer than a pixel, with
how many events each block holds), and once the visible window holds few enough events a small
JavaScript callback swaps in the individual events of that window from a binary-encoded array.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from workbench.errors import InvalidRequest
from workbench.profiles import analysis
from workbench.profiles.masks import _is

_PALETTE = {"kernel": "#2b8cbe", "gpu_memcpy": "#e34a33", "gpu_memset": "#fdbb84", "cpu_op": "#31a354",
            "cuda_runtime": "#756bb1", "cuda_driver": "#9e9ac8", "user_annotation": "#969696",
            "gpu_user_annotation": "#bdbdbd", "python_function": "#fec44f"}
_OTHER_COLOR = "#636363"

_DETAIL_JS = """
const x0 = xr.start, x1 = xr.end;
const s = full.data.start, e = full.data.end;
// events are sorted by start; any event visible in [x0, x1] starts after x0 - max_dur
let lo = 0, hi = s.length;
const from = x0 - max_dur;
while (lo < hi) { const m = (lo + hi) >> 1; if (s[m] < from) lo = m + 1; else hi = m; }
const out = {start: [], end: [], lane: [], name: [], cat: [], color: [], dur: []};
let n = 0;
for (let i = lo; i < s.length && s[i] <= x1; i++) {
  if (e[i] < x0) continue;
  if (++n > cap) break;
  out.start.push(s[i]); out.end.push(e[i]); out.lane.push(full.data.lane[i]);
  out.name.push(names[full.data.name[i]]); out.cat.push(cats[full.data.cat[i]]);
  out.color.push(colors[full.data.cat[i]]); out.dur.push(e[i] - s[i]);
}
if (n > cap) { for (const k in out) out[k] = []; overview_r.visible = true; }
else { overview_r.visible = false; }
detail.data = out;
"""


MAX_DEPTH = 31  # deeper CPU ops share the last depth lane
BROWSER_MAX_EVENTS = 200_000  # above this the page gets only what is in view (server-side detail)


def nesting_depths(start: np.ndarray, end: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Depth of each event among the events of its lane (`key`) that enclose it, as Perfetto
    lays out a thread's slices: 0 for a top-level op, 1 for an op inside it, ...

    One pass in start order (longer first at equal starts) with a stack of open ends per
    lane; plain Python over lists because the stack is sequential by nature."""
    n = len(start)
    depth = np.zeros(n, dtype=np.int32)
    if n == 0:
        return depth
    order = np.lexsort((start - end, start, key))
    starts, ends, keys = start[order].tolist(), end[order].tolist(), key[order].tolist()
    out = [0] * n
    stack: list[float] = []
    current = None
    for i in range(n):
        if keys[i] != current:
            stack, current = [], keys[i]
        s = starts[i]
        while stack and stack[-1] <= s:
            stack.pop()
        out[i] = min(len(stack), MAX_DEPTH)
        stack.append(ends[i])
    depth[order] = out
    return depth


def _lanes(df: pd.DataFrame, meta: dict[str, Any], mask: np.ndarray, start: np.ndarray,
           end: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Lane index per event (GPU device/stream lanes first, then host threads, each thread
    split into depth lanes for nested ops) and lane labels."""
    is_gpu = analysis.gpu_events(df)[mask]
    dev = analysis.gpu_device(df)[mask]
    stream = df["stream"].to_numpy()[mask]
    pid = df["pid"].to_numpy()[mask]
    tid = df["tid"].to_numpy()[mask]
    key_a = np.where(is_gpu, 0, 1)
    key_b = np.where(is_gpu, dev, pid)
    key_c = np.where(is_gpu, stream, tid)
    keys = pd.DataFrame({"a": key_a, "b": key_b, "c": key_c})
    host = np.flatnonzero(~is_gpu)
    depth = np.zeros(len(keys), dtype=np.int32)
    if len(host):
        thread = pd.factorize(pd.MultiIndex.from_arrays([key_b[host], key_c[host]]))[0]
        depth[host] = nesting_depths(start[host], end[host], thread)
    keys["d"] = depth
    uniq = keys.drop_duplicates().sort_values(["a", "b", "c", "d"], ignore_index=True)
    uniq["lane"] = np.arange(len(uniq))
    lane = keys.merge(uniq, on=["a", "b", "c", "d"], how="left")["lane"].to_numpy()
    pnames = meta.get("process_names", {})
    tnames = meta.get("thread_names", {})
    labels = []
    for a, b, c, d in uniq[["a", "b", "c", "d"]].itertuples(index=False):
        if a == 0:
            labels.append(f"GPU {b} stream {c}")
        elif d == 0:
            labels.append(f"{pnames.get(str(b), f'pid {b}')[:24]} / {tnames.get(f'{b}:{c}', f'tid {c}')[:24]}")
        else:
            labels.append(f"↳ depth {d}")
    return lane, labels


def _coalesce(start: np.ndarray, end: np.ndarray, lane: np.ndarray, resolution: float) -> pd.DataFrame:
    """Per lane, merge events closer than `resolution` into blocks (with their event counts)."""
    order = np.lexsort((start, lane))
    s, e, ln = start[order], end[order], lane[order]
    if len(s) == 0:
        return pd.DataFrame({"start": [], "end": [], "lane": [], "events": []})
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    # running max of ends within each lane
    lane_start = np.empty(len(s), dtype=bool)
    lane_start[0] = True
    lane_start[1:] = ln[1:] != ln[:-1]
    reach = pd.Series(e).groupby(np.cumsum(lane_start)).cummax().to_numpy()
    new[1:] = lane_start[1:] | (s[1:] > reach[:-1] + resolution)
    first = np.flatnonzero(new)
    block_end = np.maximum.reduceat(e, first)
    counts = np.diff(np.append(first, len(s)))
    return pd.DataFrame({"start": s[first], "end": block_end, "lane": ln[first], "events": counts})


class TimelineData:
    """The events a timeline draws, sorted by start (µs from the first event), with their lanes;
    `window` aggregates any part of it for one view, on the server."""

    def __init__(self, df: pd.DataFrame, meta: dict[str, Any], start_us: float | None = None,
                 end_us: float | None = None) -> None:
        mask = analysis.complete(df) & analysis.valid_duration(df) & ~_is(df, "cat", ("Trace",))
        ts = df["ts_us"].to_numpy()
        origin = float(np.nanmin(ts[mask])) if mask.any() else 0.0
        start = ts[mask] - origin
        end = start + df["dur_us"].to_numpy()[mask]
        if start_us is not None or end_us is not None:
            lo = -np.inf if start_us is None else start_us - origin
            hi = np.inf if end_us is None else end_us - origin
            keep = (end >= lo) & (start < hi)
            full_mask = np.flatnonzero(mask)[keep]
            mask = np.zeros(len(df), dtype=bool)
            mask[full_mask] = True
            start, end = start[keep], end[keep]
        lane, self.labels = _lanes(df, meta, mask, start, end)
        self.names = [str(n) for n in df["name"].cat.categories]
        self.cats = [str(c) for c in df["cat"].cat.categories] + ["?"]
        self.colors = [_PALETTE.get(c, _OTHER_COLOR) for c in self.cats]
        cat_codes = df["cat"].cat.codes.to_numpy()[mask].astype(np.int32)
        order = np.argsort(start, kind="stable")
        self.start, self.end = start[order], end[order]
        self.lane = lane[order].astype(np.int32)
        self.name = df["name"].cat.codes.to_numpy()[mask].astype(np.int32)[order]
        self.cat = np.where(cat_codes < 0, len(self.cats) - 1, cat_codes)[order]
        self.max_dur = float((self.end - self.start).max()) if len(self.start) else 0.0
        self.x0 = float(self.start.min()) if len(self.start) else 0.0
        self.span = float(self.end.max() - self.x0) if len(self.start) else 1.0

    def __len__(self) -> int:
        return len(self.start)

    def events(self, rows: Any) -> dict[str, Any]:
        """The individual events at `rows` as the detail source's columns."""
        names, cats, colors = self.names, self.cats, self.colors
        cat = self.cat[rows]
        return {"start": self.start[rows], "end": self.end[rows], "lane": self.lane[rows],
                "name": [names[i] if i >= 0 else "" for i in self.name[rows].tolist()],
                "cat": [cats[i] for i in cat.tolist()], "color": [colors[i] for i in cat.tolist()],
                "dur": self.end[rows] - self.start[rows]}

    def blocks(self, rows: Any, resolution: float) -> pd.DataFrame:
        out = _coalesce(self.start[rows], self.end[rows], self.lane[rows], resolution)
        out["lane_label"] = [self.labels[int(i)] for i in out["lane"]]
        out["dur"] = out["end"] - out["start"]
        return out

    def window(self, x0: float, x1: float, *, width_px: int, cap: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(blocks, events) for the view [x0, x1]: the events themselves when at most `cap`
        are visible, else blocks merged at half a pixel's time (`width_px` pixels)."""
        lo = int(np.searchsorted(self.start, x0 - self.max_dur, side="left"))
        hi = int(np.searchsorted(self.start, x1, side="right"))
        rows = lo + np.flatnonzero(self.end[lo:hi] >= x0)
        if len(rows) <= cap:
            return _EMPTY_BLOCKS, self.events(rows)
        blocks = self.blocks(rows, max(x1 - x0, 1e-9) / (2 * width_px))
        return {k: blocks[k].to_numpy() if k != "lane_label" else blocks[k].tolist() for k in blocks}, _EMPTY_DETAIL


_EMPTY_DETAIL: dict[str, Any] = {"start": [], "end": [], "lane": [], "name": [], "cat": [], "color": [], "dur": []}
_EMPTY_BLOCKS: dict[str, Any] = {"start": [], "end": [], "lane": [], "events": [], "lane_label": [], "dur": []}


def timeline(df: pd.DataFrame, meta: dict[str, Any], *, start_us: float | None = None, end_us: float | None = None,
             title: str = "timeline", detail_cap: int = 4000, width: int = 1000,
             browser_max_events: int = BROWSER_MAX_EVENTS) -> Any:
    """A Bokeh figure of the trace: lanes per GPU stream and host thread (nested CPU ops in
    depth lanes), time in µs from the trace's first event. Zoom in (wheel / box) to see
    individual events with their names.

    Up to `browser_max_events` the page holds every event and a JavaScript callback swaps
    blocks for events as you zoom (works in a static HTML file too). Above it the page holds
    only what is in view: a Python callback on the view's range (`TimelineData.window`)
    sends the blocks or events of each new view, so this needs a live Bokeh document (the
    Panel dashboard, or Panel in a notebook); a static copy shows the overview only."""
    from bokeh.events import RangesUpdate
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Range1d
    from bokeh.plotting import figure

    data = TimelineData(df, meta, start_us, end_us)
    labels, x0, span = data.labels, data.x0, data.span
    served = len(data) > browser_max_events
    everything = slice(None)
    blocks = data.blocks(everything, span / (2 * width))
    detail = ColumnDataSource(dict(_EMPTY_DETAIL), name="wb-timeline-detail")
    overview = ColumnDataSource(blocks, name="wb-timeline-blocks")

    fig = figure(title=f"{title}: {len(data):,} events in {len(labels)} lanes", width=width,
                 height=min(60 + 22 * max(len(labels), 1), 900), x_axis_label="µs from trace start",
                 y_range=Range1d(start=len(labels) - 0.5, end=-0.5), tools="xwheel_zoom,xpan,box_zoom,reset,save",
                 active_scroll="xwheel_zoom", output_backend="webgl", name="wb-timeline")
    fig.x_range = Range1d(start=x0 - 0.01 * span, end=x0 + 1.01 * span)
    ov_seg = fig.segment(x0="start", x1="end", y0="lane", y1="lane", source=overview, line_width=12, line_color="#4a6fa5")
    det = fig.segment(x0="start", x1="end", y0="lane", y1="lane", source=detail, line_width=12, line_color="color")
    fig.yaxis.ticker = list(range(len(labels)))
    fig.yaxis.major_label_overrides = {i: lab for i, lab in enumerate(labels)}
    fig.add_tools(HoverTool(renderers=[ov_seg], tooltips=[("lane", "@lane_label"), ("events", "@events"),
                                                          ("start µs", "@start{0,0.0}"), ("µs", "@dur{0,0.0}")]))
    fig.add_tools(HoverTool(renderers=[det], tooltips=[("name", "@name"), ("cat", "@cat"), ("start µs", "@start{0,0.0}"),
                                                       ("µs", "@dur{0,0.0}")]))
    if served:
        def update(event: Any) -> None:
            if event.x0 is None or event.x1 is None:
                return
            new_blocks, events = data.window(float(event.x0), float(event.x1), width_px=width, cap=detail_cap)
            overview.data = new_blocks
            detail.data = events

        fig.on_event(RangesUpdate, update)
    else:
        full = ColumnDataSource({"start": data.start, "end": data.end, "lane": data.lane, "name": data.name,
                                 "cat": data.cat}, name="wb-timeline-full")
        callback = CustomJS(args={"xr": fig.x_range, "full": full, "detail": detail, "overview_r": ov_seg,
                                  "names": data.names, "cats": data.cats, "colors": data.colors, "cap": detail_cap,
                                  "max_dur": data.max_dur}, code=_DETAIL_JS)
        fig.x_range.js_on_change("start", callback)
        fig.x_range.js_on_change("end", callback)
        # The initial view: the individual events when they are few, else the blocks.
        if len(data) <= detail_cap:
            detail.data = data.events(everything)
            ov_seg.visible = False
    fig.tags = [{"events": len(data), "blocks": len(blocks), "lanes": len(labels), "served": served}]
    return fig


# -- plots of the analyses ---------------------------------------------------------------------


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def _hbar(labels: list[str], values: list[float], title: str, x_label: str, colors: list[str] | None = None) -> Any:
    from bokeh.models import ColumnDataSource, FactorRange
    from bokeh.plotting import figure

    labels = [_short(str(x)) for x in labels]
    src = ColumnDataSource({"label": labels, "value": values, "color": colors or ["#2b8cbe"] * len(values)})
    fig = figure(y_range=FactorRange(factors=list(reversed(labels))), title=title, width=900, height=60 + 24 * max(len(labels), 1),
                 x_axis_label=x_label, tools="save,hover", tooltips=[("", "@label"), ("value", "@value{0,0.0}")])
    fig.hbar(y="label", right="value", height=0.7, color="color", source=src)
    return fig


def plot(profile: Any, what: str = "kernels", *, top: int = 15) -> Any:
    """A Bokeh figure for one analysis of `profile`."""
    from bokeh.plotting import figure

    if what == "kernels":
        k = profile.kernels().head(top)
        return _hbar(k["name"].tolist(), k["total_us"].tolist(), f"{profile.name}: top kernels", "total µs")
    if what == "breakdown":
        b = profile.kernel_breakdown()
        return _hbar(b["category"].tolist(), b["total_us"].tolist(), f"{profile.name}: kernel time by category", "µs")
    if what == "idle":
        i = profile.idle_by_stream()
        return _hbar([f"GPU {d} stream {s}" for d, s in zip(i["device"], i["stream"], strict=True)], i["idle_us"].tolist(),
                     f"{profile.name}: GPU idle time", "idle µs")
    if what == "steps":
        s = profile.steps()
        fig = figure(title=f"{profile.name}: steps", width=900, height=300, x_axis_label="step", y_axis_label="µs")
        fig.line(s["step"], s["host_us"], legend_label="host", color="#31a354")
        fig.scatter(s["step"], s["gpu_busy_us"], legend_label="GPU busy", color="#2b8cbe")
        return fig
    if what == "memory":
        m = profile.memory()
        fig = figure(title=f"{profile.name}: allocated memory", width=900, height=300, x_axis_label="µs",
                     y_axis_label="bytes")
        for dev, g in m.groupby("device"):
            fig.step(g["ts_us"] - m["ts_us"].min(), g["total_allocated"], legend_label=f"device {dev}")
        return fig
    if what == "delay":
        d = profile.launch_delay()
        hist, edges = np.histogram(d["delay_us"].clip(lower=0), bins=50) if len(d) else (np.zeros(0), np.zeros(1))
        fig = figure(title=f"{profile.name}: launch → start delay", width=900, height=300, x_axis_label="µs",
                     y_axis_label="kernels")
        fig.quad(left=edges[:-1], right=edges[1:], bottom=0, top=hist)
        return fig
    if what == "overlap":
        o = profile.overlap()
        return _hbar([f"GPU {d} {k}" for d in o["device"] for k in ("comm", "compute", "overlap")],
                     [v for r in o.itertuples() for v in (r.comm_us, r.compute_us, r.overlap_us)],
                     f"{profile.name}: communication / computation", "µs")
    raise InvalidRequest(f"no plot named {what!r}; valid: kernels, breakdown, idle, steps, memory, delay, overlap")


def plot_compare(table: pd.DataFrame, *, top: int = 20, title: str = "b − a") -> Any:
    """Horizontal bars of the largest changes in a `compare` table (red: slower, green: faster)."""
    t = table.head(top)
    colors = ["#d7301f" if d > 0 else "#238443" for d in t["delta_us"]]
    labels = [f"{i + 1}. {k[:1]} {_short(str(n), 55)}" for i, (k, n) in enumerate(zip(t["kind"], t["name"], strict=True))]
    return _hbar(labels, t["delta_us"].tolist(), title, "Δ µs (b − a)", colors)


# -- export --------------------------------------------------------------------------------------


def export_slice(source: str | os.PathLike[str], target: str | os.PathLike[str], *, start_us: float | None = None,
                 end_us: float | None = None) -> Path:
    """Write the events of `source` that overlap [start_us, end_us) (the file's own timestamps)
    to `target` as Chrome trace JSON (gzip when it ends in .gz). Metadata events are always kept,
    as are the file's top-level fields (deviceProperties, baseTimeNanoseconds, ...)."""
    from workbench.profiles import ingest

    src = Path(source)
    try:
        data = orjson.loads(ingest.read_text(src))
    except orjson.JSONDecodeError:
        # read the way ingest reads, for an error that says what is wrong and at which event
        ingest.parse_file(src)
        raise ingest.TraceError(f"{str(src)!r} is not valid JSON") from None
    if isinstance(data, list):
        data = {"traceEvents": data}
    lo = -np.inf if start_us is None else float(start_us)
    hi = np.inf if end_us is None else float(end_us)
    if lo > hi:
        raise InvalidRequest(f"export window start {start_us} is after its end {end_us}")
    kept = []
    for e in data.get("traceEvents") or []:
        if not isinstance(e, dict):
            continue
        if e.get("ph") == "M":
            kept.append(e)
            continue
        ts = e.get("ts")
        if not isinstance(ts, int | float):
            continue
        dur = e.get("dur")
        dur = dur if isinstance(dur, int | float) else 0
        if ts < hi and ts + max(dur, 0) >= lo:
            kept.append(e)
    data["traceEvents"] = kept
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = orjson.dumps(data)
    if out.suffix == ".gz":
        with gzip.open(out, "wb", compresslevel=5) as fh:
            fh.write(blob)
    else:
        out.write_bytes(blob)
    return out
