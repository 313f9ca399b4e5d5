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


def _lanes(df: pd.DataFrame, meta: dict[str, Any], mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Lane index per event (GPU device/stream lanes first, then host threads) and lane labels."""
    is_gpu = analysis.gpu_events(df)[mask]
    dev = analysis.gpu_device(df)[mask]
    stream = df["stream"].to_numpy()[mask]
    pid = df["pid"].to_numpy()[mask]
    tid = df["tid"].to_numpy()[mask]
    key_a = np.where(is_gpu, 0, 1)
    key_b = np.where(is_gpu, dev, pid)
    key_c = np.where(is_gpu, stream, tid)
    keys = pd.DataFrame({"a": key_a, "b": key_b, "c": key_c})
    uniq = keys.drop_duplicates().sort_values(["a", "b", "c"], ignore_index=True)
    uniq["lane"] = np.arange(len(uniq))
    lane = keys.merge(uniq, on=["a", "b", "c"], how="left")["lane"].to_numpy()
    pnames = meta.get("process_names", {})
    tnames = meta.get("thread_names", {})
    labels = []
    for a, b, c in uniq[["a", "b", "c"]].itertuples(index=False):
        if a == 0:
            labels.append(f"GPU {b} stream {c}")
        else:
            labels.append(f"{pnames.get(str(b), f'pid {b}')[:24]} / {tnames.get(f'{b}:{c}', f'tid {c}')[:24]}")
    return lane, labels


def _coalesce(start: np.ndarray, end: np.ndarray, lane: np.ndarray, resolution: float) -> pd.DataFrame:
    """Per lane, merge events closer than `resolution` into blocks (with their event counts)."""
    order = np.lexsort((start, lane))
    s, e, ln = start[order], end[order], lane[order]
    if len(s) == 0:
        return pd.DataFrame({"start": [], "end": [], "lane": [], "events": []})
    reach = np.empty_like(e)
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


def timeline(df: pd.DataFrame, meta: dict[str, Any], *, start_us: float | None = None, end_us: float | None = None,
             title: str = "timeline", detail_cap: int = 4000, width: int = 1000) -> Any:
    """A Bokeh figure of the trace: lanes per GPU stream and host thread, time in µs from the
    trace's first event. Zoom in (wheel / box) to see individual events with their names."""
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Range1d
    from bokeh.plotting import figure

    mask = analysis.complete(df) & analysis.valid_duration(df) & ~analysis._is(df, "cat", ("Trace",))
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
    lane, labels = _lanes(df, meta, mask)
    name_codes = df["name"].cat.codes.to_numpy()[mask].astype(np.int32)
    cat_codes = df["cat"].cat.codes.to_numpy()[mask].astype(np.int32)
    names = [str(n) for n in df["name"].cat.categories]
    cats = [str(c) for c in df["cat"].cat.categories] + ["?"]
    cat_codes = np.where(cat_codes < 0, len(cats) - 1, cat_codes)
    colors = [_PALETTE.get(c, _OTHER_COLOR) for c in cats]

    span = float(end.max() - start.min()) if len(start) else 1.0
    x0 = float(start.min()) if len(start) else 0.0
    blocks = _coalesce(start, end, lane, resolution=span / (2 * width))
    blocks["lane_label"] = [labels[int(i)] for i in blocks["lane"]]
    blocks["dur"] = blocks["end"] - blocks["start"]

    order = np.argsort(start, kind="stable")
    full = ColumnDataSource({"start": start[order], "end": end[order], "lane": lane[order].astype(np.int32),
                             "name": name_codes[order], "cat": cat_codes[order]})
    detail = ColumnDataSource({"start": [], "end": [], "lane": [], "name": [], "cat": [], "color": [], "dur": []},
                              name="wb-timeline-detail")
    overview = ColumnDataSource(blocks, name="wb-timeline-blocks")

    fig = figure(title=f"{title}: {len(start):,} events in {len(labels)} lanes", width=width,
                 height=min(60 + 22 * max(len(labels), 1), 900), x_axis_label="µs from trace start",
                 y_range=Range1d(len(labels) - 0.5, -0.5), tools="xwheel_zoom,xpan,box_zoom,reset,save",
                 active_scroll="xwheel_zoom", output_backend="webgl", name="wb-timeline")
    fig.x_range = Range1d(x0 - 0.01 * span, x0 + 1.01 * span)
    ov_seg = fig.segment(x0="start", x1="end", y0="lane", y1="lane", source=overview, line_width=12, line_color="#4a6fa5")
    det = fig.segment(x0="start", x1="end", y0="lane", y1="lane", source=detail, line_width=12, line_color="color")
    fig.yaxis.ticker = list(range(len(labels)))
    fig.yaxis.major_label_overrides = {i: lab for i, lab in enumerate(labels)}
    fig.add_tools(HoverTool(renderers=[ov_seg], tooltips=[("lane", "@lane_label"), ("events", "@events"),
                                                          ("start µs", "@start{0,0.0}"), ("µs", "@dur{0,0.0}")]))
    fig.add_tools(HoverTool(renderers=[det], tooltips=[("name", "@name"), ("cat", "@cat"), ("start µs", "@start{0,0.0}"),
                                                       ("µs", "@dur{0,0.0}")]))
    max_dur = float((end - start).max()) if len(start) else 0.0
    callback = CustomJS(args={"xr": fig.x_range, "full": full, "detail": detail, "overview_r": ov_seg, "names": names,
                              "cats": cats, "colors": colors, "cap": detail_cap, "max_dur": max_dur}, code=_DETAIL_JS)
    fig.x_range.js_on_change("start", callback)
    fig.x_range.js_on_change("end", callback)
    # The initial view: the individual events when they are few, else the blocks.
    if len(start) <= detail_cap:
        detail.data = {"start": start, "end": end, "lane": lane, "name": [names[i] for i in name_codes],
                       "cat": [cats[i] for i in cat_codes], "color": [colors[i] for i in cat_codes], "dur": end - start}
        ov_seg.visible = False
    fig.tags = [{"events": len(start), "blocks": len(blocks), "lanes": len(labels)}]
    return fig


# -- plots of the analyses ---------------------------------------------------------------------


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def _hbar(labels: list[str], values: list[float], title: str, x_label: str, colors: list[str] | None = None) -> Any:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    labels = [_short(str(x)) for x in labels]
    src = ColumnDataSource({"label": labels, "value": values, "color": colors or ["#2b8cbe"] * len(values)})
    fig = figure(y_range=list(reversed(labels)), title=title, width=900, height=60 + 24 * max(len(labels), 1),
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
        dur = e.get("dur") if isinstance(e.get("dur"), int | float) else 0
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
