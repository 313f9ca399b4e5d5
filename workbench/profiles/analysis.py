"""Analyses of an event table: pure functions from DataFrames to DataFrames (or dicts).

Each takes the table built by `workbench.profiles.table` (schema in `workbench.profiles.ingest`)
and returns a pandas object; the plots are in `workbench.profiles.views`. Times are microseconds.

Two definitions are contracts checked against independent readings of traces:

* `summary_of`: the `workbench profiles summary --json` object (events, kernels, top_kernels,
  cpu_ops, gpu_busy_us, gpu_span_us, gpu_idle_share).
* `hta_breakdown`: HolisticTraceAnalysis 0.5's temporal breakdown and GPU kernel (type)
  breakdown, re-implemented on numpy with HTA's definitions (see the function's docstring).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from workbench.profiles.breakdown import (
    HTA_TYPES, KERNEL_CATEGORIES, _categories, hta_breakdown, hta_kernel_type, kernel_category,
)
from workbench.profiles.compare import compare
from workbench.profiles.ingest import GPU_CATEGORIES
from workbench.profiles.masks import (
    _is, _text, complete, contract_gpu_events, gpu_device, gpu_events, valid_duration,
)
from workbench.profiles.summary import _num, merge_intervals, summary_of_columns, union_length

# Re-exported: the interval helpers live in `summary`, the breakdown in `breakdown`, the
# run-vs-run comparison in `compare`, the row masks in `masks`.
__all__ = [
    "HTA_TYPES", "KERNEL_CATEGORIES", "compare", "complete", "contract_gpu_events", "gpu_device", "gpu_events",
    "hta_breakdown", "hta_kernel_type", "kernel_category", "merge_intervals", "summary_of", "union_length",
    "valid_duration",
]


def _intersection_length(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Length of the intersection of two unions of intervals (each already merged)."""
    la, lb = float((a[1] - a[0]).sum()), float((b[1] - b[0]).sum())
    both = union_length(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))
    return la + lb - both


# -- summary (contract) ---------------------------------------------------------------------------


def summary_of(df: pd.DataFrame, meta: dict[str, Any], *, top: int = 20) -> dict[str, Any]:
    """The `workbench profiles summary --json` object of an event table (`summary.summary_of_columns`)."""
    columns: dict[str, Any] = {c: (df[c].cat.codes.to_numpy(), list(df[c].cat.categories)) for c in ("ph", "cat", "name")}
    columns.update({c: df[c].to_numpy() for c in ("ts_us", "dur_us", "device", "pid")})
    return summary_of_columns(columns, dict(meta, events=meta.get("events", len(df))), top=top)


# -- kernels ----------------------------------------------------------------------------------------


def kernels(df: pd.DataFrame) -> pd.DataFrame:
    """One row per GPU kernel (and memcpy/memset) name: count, total, mean, max, share, category."""
    g = gpu_events(df)
    sub = pd.DataFrame({
        "name": _text(df, "name", g),
        "cat": _text(df, "cat", g),
        "dur_us": df["dur_us"].to_numpy()[g],
    })
    if sub.empty:
        return pd.DataFrame(columns=["name", "category", "hta_type", "count", "total_us", "mean_us", "max_us", "share"])
    agg = sub.groupby(["name", "cat"], sort=False)["dur_us"].agg(count="count", total_us="sum", mean_us="mean", max_us="max").reset_index()
    agg["category"] = [kernel_category(n, c) for n, c in zip(agg["name"], agg["cat"], strict=True)]
    agg["hta_type"] = [hta_kernel_type(n) for n in agg["name"]]
    agg["share"] = agg["total_us"] / agg["total_us"].sum()
    agg = agg.sort_values("total_us", ascending=False, ignore_index=True)
    return agg[["name", "category", "hta_type", "count", "total_us", "mean_us", "max_us", "share"]]


def kernel_breakdown(df: pd.DataFrame) -> pd.DataFrame:
    """Time by kernel category (gemm, communication, memory, elementwise, other)."""
    k = kernels(df)
    by = k.groupby("category")[["count", "total_us"]].sum().reindex(list(KERNEL_CATEGORIES), fill_value=0)
    total = by["total_us"].sum()
    by["share"] = by["total_us"] / total if total else 0.0
    return by.reset_index()


# -- GPU idle ---------------------------------------------------------------------------------------

_SYNC_CALL = re.compile(r"Synchronize|cudaMemcpy(?!Async)|cudaFree|hipDeviceSynchronize|hipStreamSynchronize|EventSynchronize", re.IGNORECASE)
_LAUNCH_CATS = ("cuda_runtime", "cuda_driver")


def _launch_index(df: pd.DataFrame) -> pd.DataFrame:
    """correlation -> the host call that launched it: (launch_us, pid, tid, launch name).

    Kineto's ac2g / async_cpu_to_gpu flows carry the correlation id as their id: the flow's
    start ('s') is at the launch on the host thread. Where a trace has no flows the runtime or
    driver event with the same `args.correlation` is used instead.
    """
    corr = df["correlation"].to_numpy()
    launch = complete(df) & _is(df, "cat", _LAUNCH_CATS) & (corr >= 0)
    by_corr = pd.DataFrame({
        "correlation": corr[launch], "launch_us": df["ts_us"].to_numpy()[launch],
        "launch_end_us": (df["ts_us"].to_numpy() + df["dur_us"].to_numpy())[launch],
        "pid": df["pid"].to_numpy()[launch], "tid": df["tid"].to_numpy()[launch],
        "launch": _text(df, "name", launch), "link": "correlation",
    }).drop_duplicates("correlation")
    flows = _is(df, "ph", "s") & _is(df, "cat", ("ac2g", "async_cpu_to_gpu")) & (df["flow_id"].to_numpy() >= 0)
    if flows.any():
        f = pd.DataFrame({
            "correlation": df["flow_id"].to_numpy()[flows], "flow_us": df["ts_us"].to_numpy()[flows],
        }).drop_duplicates("correlation")
        by_corr = f.merge(by_corr, on="correlation", how="outer")
        has_flow = by_corr["flow_us"].notna()
        by_corr.loc[has_flow, "launch_us"] = by_corr.loc[has_flow, "flow_us"]
        by_corr.loc[has_flow, "link"] = "flow"
        by_corr = by_corr.drop(columns="flow_us")
    return by_corr.set_index("correlation")


def launch_delay(df: pd.DataFrame) -> pd.DataFrame:
    """Per GPU event: host launch time, GPU start, and the delay between them (queueing)."""
    g = gpu_events(df)
    k = pd.DataFrame({
        "name": _text(df, "name", g), "device": gpu_device(df)[g],
        "stream": df["stream"].to_numpy()[g], "correlation": df["correlation"].to_numpy()[g],
        "start_us": df["ts_us"].to_numpy()[g], "dur_us": df["dur_us"].to_numpy()[g],
    })
    idx = _launch_index(df)
    k = k.join(idx[["launch_us", "launch", "link"]], on="correlation", how="inner")
    k["delay_us"] = k["start_us"] - k["launch_us"]
    return k.sort_values("start_us", ignore_index=True)


def launch_delay_stats(df: pd.DataFrame) -> pd.DataFrame:
    d = launch_delay(df)
    if d.empty:
        return pd.DataFrame(columns=["device", "stream", "kernels", "mean_us", "p50_us", "p95_us", "max_us"])
    return (d.groupby(["device", "stream"])["delay_us"]
            .agg(kernels="count", mean_us="mean", p50_us="median", p95_us=lambda s: s.quantile(0.95), max_us="max")
            .reset_index())


def idle_by_stream(df: pd.DataFrame, *, long_gap_us: float = 100.0) -> pd.DataFrame:
    """Per device and stream: busy (union), span, idle, idle share, number of gaps and long gaps."""
    g = gpu_events(df)
    ts = df["ts_us"].to_numpy()[g]
    end = ts + df["dur_us"].to_numpy()[g]
    dev = gpu_device(df)[g]
    stream = df["stream"].to_numpy()[g]
    def row(d: int, s: int | str, m: np.ndarray) -> dict[str, Any]:
        ms, me = merge_intervals(ts[m], end[m])
        span, busy = float(me[-1] - ms[0]), float((me - ms).sum())
        gaps = ms[1:] - me[:-1]
        return {"device": d, "stream": s, "events": int(m.sum()), "busy_us": busy, "span_us": span,
                "idle_us": span - busy, "idle_share": (span - busy) / span if span else 0.0,
                "gaps": int((gaps > 0).sum()), "long_gaps": int((gaps >= long_gap_us).sum())}

    rows = [row(d, s, (dev == d) & (stream == s)) for d, s in sorted(set(zip(dev.tolist(), stream.tolist(), strict=True)))]
    rows += [row(d, "all", dev == d) for d in sorted(set(dev.tolist()))]
    return pd.DataFrame(rows, columns=["device", "stream", "events", "busy_us", "span_us", "idle_us", "idle_share", "gaps", "long_gaps"])


def _enclosing_op(cpu_thread: pd.Series, pid: int, tid: int, at: float, ts_all: np.ndarray, dur_all: np.ndarray,
                  names_all: np.ndarray) -> str | None:
    """The innermost host operator on (pid, tid) running at time `at` (e.g. the op that synced)."""
    if (pid, tid) not in cpu_thread.index:
        return None
    ops = cpu_thread.loc[(pid, tid)]
    inside = ops[(ts_all[ops] <= at) & (ts_all[ops] + dur_all[ops] >= at)]
    if not len(inside):
        return None
    return str(names_all[inside[np.argmin(dur_all[inside])]])


def idle_gaps(df: pd.DataFrame, *, min_gap_us: float = 100.0, per_stream: bool = False) -> pd.DataFrame:
    """The GPU's long idle gaps, each with its host-side cause.

    A gap is time on a device (or a device's stream, with `per_stream`) when none of its GPU
    events runs. For each gap of at least `min_gap_us` we look at the event that ends it:
    * `host_wait`: its launch reached the GPU after the gap began - the CPU was late; `host_op`
      is the host operator that was running on the launching thread during the gap (the
      shortest one covering at least half of the gap, else the one that overlaps it most);
    * `sync`: a blocking host call (cudaStreamSynchronize, cudaDeviceSynchronize, a synchronous
      cudaMemcpy, ...) overlapped the gap: the host waited on the device, then launched more;
      (`host_op` is then the innermost operator that made the blocking call, e.g. aten::item);
    * `gpu_wait`: launched before the gap began: the GPU waited on something else (an event
      on another stream, a collective's peer);
    * `launch_not_traced`: the launch of the next event is not in the trace.
    """
    g = gpu_events(df)
    if not g.any():
        return pd.DataFrame(columns=["device", "stream", "start_us", "end_us", "gap_us", "prev_kernel", "next_kernel",
                                     "launch_us", "cause", "host_op", "sync_call"])
    ts_all = df["ts_us"].to_numpy()
    dur_all = df["dur_us"].to_numpy()
    names_all = df["name"].to_numpy()
    gi = np.flatnonzero(g)
    dev = gpu_device(df)[gi]
    stream = df["stream"].to_numpy()[gi]
    launches = _launch_index(df)
    corr_all = df["correlation"].to_numpy()
    pid_all, tid_all = df["pid"].to_numpy(), df["tid"].to_numpy()

    x = complete(df) & valid_duration(df)
    cpu_mask = x & _is(df, "cat", ("cpu_op",))
    cpu_idx = np.flatnonzero(cpu_mask)
    cpu_thread = pd.Series(cpu_idx).groupby([df["pid"].to_numpy()[cpu_idx], df["tid"].to_numpy()[cpu_idx]]).apply(np.asarray)
    sync_mask = x & _is(df, "cat", _LAUNCH_CATS)
    sync_idx = np.flatnonzero(sync_mask)
    sync_idx = sync_idx[[bool(_SYNC_CALL.search(str(names_all[i]))) for i in sync_idx]]

    keys = list(zip(dev.tolist(), stream.tolist(), strict=True)) if per_stream else [(d, None) for d in dev.tolist()]
    groups: dict[Any, list[int]] = {}
    for pos, key in enumerate(keys):
        groups.setdefault(key, []).append(pos)
    rows = []
    for (d, s), positions in sorted(groups.items(), key=lambda kv: (kv[0][0], -2 if kv[0][1] is None else kv[0][1])):
        rows_i = gi[np.asarray(positions)]
        order = np.argsort(ts_all[rows_i], kind="stable")
        rows_i = rows_i[order]
        start, end = ts_all[rows_i], ts_all[rows_i] + dur_all[rows_i]
        reach = np.maximum.accumulate(end)
        gap = start[1:] - reach[:-1]
        for j in np.flatnonzero(gap >= min_gap_us):
            gap_start, gap_end = float(reach[j]), float(start[j + 1])
            nxt = rows_i[j + 1]
            prev = rows_i[: j + 1][np.argmax(end[: j + 1])]
            launch = launches.loc[corr_all[nxt]] if corr_all[nxt] in launches.index else None
            launch_us = float(launch["launch_us"]) if launch is not None else math.nan
            sync_call = sync_row = None
            if len(sync_idx):
                s_ts, s_end = ts_all[sync_idx], ts_all[sync_idx] + dur_all[sync_idx]
                ov = np.minimum(s_end, gap_end) - np.maximum(s_ts, gap_start)
                if (ov > 0).any():
                    sync_row = sync_idx[np.argmax(ov)]
                    sync_call = str(names_all[sync_row])
            if sync_call is not None:
                cause = "sync"
            elif launch is not None and launch_us > gap_start:
                cause = "host_wait"
            elif launch is not None:
                cause = "gpu_wait"
            else:
                cause = "launch_not_traced"
            host_op = None
            if sync_row is not None:
                host_op = _enclosing_op(cpu_thread, int(pid_all[sync_row]), int(tid_all[sync_row]), ts_all[sync_row],
                                        ts_all, dur_all, names_all)
            elif launch is not None and (int(launch["pid"]), int(launch["tid"])) in cpu_thread.index:
                ops = cpu_thread.loc[(int(launch["pid"]), int(launch["tid"]))]
                o_ts, o_end = ts_all[ops], ts_all[ops] + dur_all[ops]
                ov = np.minimum(o_end, gap_end) - np.maximum(o_ts, gap_start)
                if (ov > 0).any():
                    covering = np.flatnonzero(ov >= 0.5 * (gap_end - gap_start))
                    pick = covering[np.argmin(o_end[covering] - o_ts[covering])] if len(covering) else int(np.argmax(ov))
                    host_op = str(names_all[ops[pick]])
            rows.append({"device": d, "stream": "all" if s is None else s, "start_us": gap_start, "end_us": gap_end,
                         "gap_us": gap_end - gap_start, "prev_kernel": str(names_all[prev]),
                         "next_kernel": str(names_all[nxt]), "launch_us": launch_us, "cause": cause,
                         "host_op": host_op, "sync_call": sync_call})
    out = pd.DataFrame(rows, columns=["device", "stream", "start_us", "end_us", "gap_us", "prev_kernel", "next_kernel",
                                      "launch_us", "cause", "host_op", "sync_call"])
    return out.sort_values("gap_us", ascending=False, ignore_index=True)


# -- communication / computation overlap ---------------------------------------------------------


def comm_compute_overlap(df: pd.DataFrame) -> pd.DataFrame:
    """Per device: communication time, computation time, and how much of the communication
    ran while computation was also running (higher is better: hidden communication)."""
    g = gpu_events(df)
    names = _text(df, "name", g)
    cats = _text(df, "cat", g)
    ts = df["ts_us"].to_numpy()[g]
    end = ts + df["dur_us"].to_numpy()[g]
    dev = gpu_device(df)[g]
    category = _categories(names, cats)
    rows = []
    for d in sorted(set(dev.tolist())):
        m = dev == d
        comm = m & (category == "communication")
        comp = m & ~np.isin(category, ["communication", "memory"])
        a = merge_intervals(ts[comm], end[comm])
        b = merge_intervals(ts[comp], end[comp])
        comm_us, comp_us = float((a[1] - a[0]).sum()), float((b[1] - b[0]).sum())
        both = _intersection_length(a, b) if comm_us and comp_us else 0.0
        rows.append({"device": d, "comm_us": comm_us, "compute_us": comp_us, "overlap_us": both,
                     "comm_overlapped_share": both / comm_us if comm_us else 0.0,
                     "comm_exposed_us": comm_us - both})
    return pd.DataFrame(rows, columns=["device", "comm_us", "compute_us", "overlap_us", "comm_overlapped_share", "comm_exposed_us"])


# -- steps ----------------------------------------------------------------------------------------

_STEP = re.compile(r"ProfilerStep\s*#\s*(\d+)")


def steps(df: pd.DataFrame) -> pd.DataFrame:
    """One row per `ProfilerStep#N` (host side): its host time, and the GPU work it launched.

    A GPU event belongs to the step during which the host launched it (found through the
    correlation id), as HTA assigns iterations; `gpu_busy_us` is the union of those events.
    """
    x = complete(df) & valid_duration(df) & ~_is(df, "cat", ("gpu_user_annotation",) + GPU_CATEGORIES)
    names = _text(df, "name", slice(None))
    cand = np.flatnonzero(x)
    step_rows = [(i, int(m.group(1))) for i in cand if (m := _STEP.match(str(names[i]))) is not None]
    cols = ["step", "start_us", "end_us", "host_us", "gpu_events", "gpu_busy_us", "gpu_start_us", "gpu_end_us"]
    if not step_rows:
        return pd.DataFrame(columns=cols)
    idx = np.array([i for i, _ in step_rows])
    number = np.array([n for _, n in step_rows])
    st = df["ts_us"].to_numpy()[idx]
    en = st + df["dur_us"].to_numpy()[idx]
    order = np.argsort(st)
    idx, number, st, en = idx[order], number[order], st[order], en[order]

    d = launch_delay(df)
    pos = np.searchsorted(st, d["launch_us"].to_numpy(), side="right") - 1
    inside = (pos >= 0) & (d["launch_us"].to_numpy() < en[np.clip(pos, 0, None)])
    d = d[inside].assign(step_pos=pos[inside])
    rows = []
    for p in range(len(st)):
        k = d[d["step_pos"] == p]
        s_, e_ = k["start_us"].to_numpy(), (k["start_us"] + k["dur_us"]).to_numpy()
        rows.append({"step": int(number[p]), "start_us": float(st[p]), "end_us": float(en[p]), "host_us": float(en[p] - st[p]),
                     "gpu_events": len(k), "gpu_busy_us": union_length(s_, e_),
                     "gpu_start_us": float(s_.min()) if len(k) else math.nan, "gpu_end_us": float(e_.max()) if len(k) else math.nan})
    return pd.DataFrame(rows, columns=cols)


# -- memory ----------------------------------------------------------------------------------------


def memory_timeline(df: pd.DataFrame) -> pd.DataFrame:
    """The `[memory]` instants: per allocation/free, the bytes and the allocator's totals after it."""
    m = _is(df, "ph", ("i", "I")) & _is(df, "name", "[memory]")
    cols = ["ts_us", "device", "bytes", "total_allocated", "total_reserved"]
    if not m.any():
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "ts_us": df["ts_us"].to_numpy()[m], "device": df["device"].to_numpy()[m],
        "bytes": df["bytes"].to_numpy()[m], "total_allocated": df["mem_allocated"].to_numpy()[m],
        "total_reserved": df["mem_reserved"].to_numpy()[m],
    })
    return out.sort_values("ts_us", kind="stable", ignore_index=True)


# -- multi-rank ------------------------------------------------------------------------------------


def comm_kernels(df: pd.DataFrame) -> pd.DataFrame:
    """The communication kernels of one trace in start order: name, start_us, dur_us."""
    g = gpu_events(df)
    names = _text(df, "name", g)
    is_comm = _categories(names, _text(df, "cat", g)) == "communication"
    ts = df["ts_us"].to_numpy()[g][is_comm]
    order = np.argsort(ts, kind="stable")
    return pd.DataFrame({"name": names[is_comm][order], "start_us": ts[order],
                         "dur_us": df["dur_us"].to_numpy()[g][is_comm][order]})


def collective_waits(comm: dict[int, pd.DataFrame]) -> tuple[dict[int, int], dict[int, float]]:
    """Per rank: how often it was the last to reach a collective, and how long the others
    waited for it in all (µs), from each rank's `comm_kernels`.

    The k-th communication kernel of every rank is taken to be the same collective (when their
    names agree). A collective ends on all ranks together, so the rank that arrived last spends
    the least time in it, and every other rank waited the difference."""
    late = dict.fromkeys(comm, 0)
    caused = dict.fromkeys(comm, 0.0)
    if len(comm) < 2:
        return late, caused
    n = min(len(v) for v in comm.values())
    ranks = sorted(comm)
    durs = np.vstack([comm[r]["dur_us"].to_numpy()[:n] for r in ranks])
    names = np.vstack([comm[r]["name"].to_numpy()[:n] for r in ranks])
    same = (names == names[0]).all(axis=0)
    last = np.argmin(durs, axis=0)
    for j in np.flatnonzero(same):
        late[ranks[last[j]]] += 1
        caused[ranks[last[j]]] += float(durs[:, j].sum() - durs[last[j], j] * len(ranks))
    return late, caused


def stragglers(frames: dict[int, pd.DataFrame], metas: dict[int, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Per rank: GPU compute and communication time, steps, and how often it was the last to
    reach a collective (`collective_waits`); `wait_caused_us` sums how long the others waited
    for it. The straggler is the rank with the most late arrivals.
    """
    comm: dict[int, pd.DataFrame] = {}
    rows = []
    for rank, df in sorted(frames.items()):
        k = kernels(df)
        ov = comm_compute_overlap(df)
        st = steps(df)
        comm[rank] = comm_kernels(df)
        rows.append({"rank": rank, "compute_us": float(ov["compute_us"].sum()),
                     "comm_us": float(k[k["category"] == "communication"]["total_us"].sum()),
                     "comm_exposed_us": float(ov["comm_exposed_us"].sum()), "steps": len(st),
                     "mean_step_us": float(st["host_us"].mean()) if len(st) else math.nan})
    out = pd.DataFrame(rows)
    late, caused = collective_waits(comm)
    out["late_arrivals"] = out["rank"].map(late)
    out["wait_caused_us"] = out["rank"].map(caused)
    out["straggler"] = out["late_arrivals"] == out["late_arrivals"].max() if len(out) > 1 else False
    return out
