"""Kernel classification and HolisticTraceAnalysis's temporal and kernel-type breakdown.

`hta_kernel_type` and `kernel_category` name what a GPU kernel is; `hta_breakdown` is a contract:
HTA 0.5's temporal breakdown (idle, compute, non-compute) and GPU kernel-type breakdown,
re-implemented on numpy with HTA's definitions and checked against HTA's own readings of traces.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from workbench.profiles.masks import _is
from workbench.profiles.summary import _num, merge_intervals, union_length


# -- kernel classification ------------------------------------------------------------------------

# HolisticTraceAnalysis 0.5 (hta/utils/utils.py): the regexes are matched with re.match.
_HTA_COMM = re.compile(r"^nccl.*Kernel")
_HTA_MEMORY = re.compile(r"(^Memcpy)|(^Memset)|(^dma)")
_HTA_NOT_COMPUTE = re.compile(r"(^nccl.*Kernel)|(.*(Memcpy)|(Memset))|(.*Sync)")
HTA_TYPES = ("COMPUTATION", "COMMUNICATION", "MEMORY")


def hta_kernel_type(name: str) -> str:
    """HTA's COMMUNICATION / MEMORY / COMPUTATION / OTHER (its `get_kernel_type`)."""
    if _HTA_COMM.match(name):
        return "COMMUNICATION"
    if _HTA_MEMORY.match(name):
        return "MEMORY"
    if not _HTA_NOT_COMPUTE.match(name):
        return "COMPUTATION"
    return "OTHER"


_CATEGORY_RULES = (
    ("communication", re.compile(r"nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|sendrecv|broadcast|c10d", re.IGNORECASE)),
    ("memory", re.compile(r"^(Memcpy|Memset|dma)|memcpy|memset|copy_kernel|CatArrayBatchedCopy|fill_kernel", re.IGNORECASE)),
    ("gemm", re.compile(r"gemm|matmul|cutlass|cublas|xmma|wgmma|hmma|dot_product|conv|bmm|_mm_|triton_.*mm", re.IGNORECASE)),
    ("elementwise", re.compile(r"elementwise|pointwise|triton_poi|vectorized|unrolled|functor|activation|relu|gelu|sigmoid|tanh|add_kernel|mul_kernel", re.IGNORECASE)),
)
KERNEL_CATEGORIES = ("gemm", "communication", "memory", "elementwise", "other")


def kernel_category(name: str, cat: str | None = None) -> str:
    """gemm, communication, memory, elementwise or other (our finer split for the breakdown view)."""
    if cat in ("gpu_memcpy", "gpu_memset"):
        return "memory"
    for label, rule in _CATEGORY_RULES:
        if rule.search(name):
            return label
    return "other"


def _categories(names: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """`kernel_category` per event, computed once per distinct (name, cat)."""
    if len(names) == 0:
        return np.array([], dtype=object)
    keys = pd.MultiIndex.from_arrays([names, cats])
    codes, uniq = pd.factorize(keys)
    labels = np.array([kernel_category(n, c) for n, c in uniq], dtype=object)
    out: np.ndarray = labels[codes]
    return out


def _map_names(names: np.ndarray, fn: Any) -> np.ndarray:
    codes, uniq = pd.factorize(names)
    out: np.ndarray = np.array([fn(str(u)) for u in uniq], dtype=object)[codes]
    return out


# -- HTA temporal and kernel-type breakdown (contract) -------------------------------------------


def _hta_kernels(df: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The rows HTA 0.5 treats as GPU kernels after `TraceAnalysis(...)` loads one rank.

    HTA's load keeps events with a duration and a category (not "Trace"); on traces whose
    timestamps are floats it rounds each event inward to whole microseconds (ts up, end down).
    When the trace has at least two ProfilerStep names it keeps only CPU events that start before
    the last ProfilerStep and the GPU kernels correlated with them (its step window: the last,
    possibly incomplete, step is dropped). Its breakdowns then take every row whose stream is not
    -1 as a GPU kernel.
    """
    dur = df["dur_us"].to_numpy()
    cat = df["cat"]
    # HTA keeps negative durations and its sums go wrong; we leave them out (and say so).
    keep = np.isfinite(dur) & (dur >= 0) & cat.notna().to_numpy() & ~_is(df, "cat", "Trace")
    ts = df["ts_us"].to_numpy()[keep]
    dur = dur[keep]
    if meta.get("ts_is_float"):
        end = np.floor(ts + dur)
        ts = np.ceil(ts)
        dur = end - ts
    names = df["name"].to_numpy()[keep]
    stream = df["stream"].to_numpy()[keep]
    corr = df["correlation"].to_numpy()[keep]
    name_str = pd.Series(names, dtype=object)
    sync = name_str.isin(["Event Sync", "Context Sync"]).to_numpy()
    is_gpu = ((stream >= 0) & (corr >= 0)) | sync

    symbols = set(pd.unique(name_str.dropna())) | set(pd.unique(cat[keep].dropna().astype(str)))
    steps = {s for s in symbols if "ProfilerStep" in str(s)}
    rows = np.ones(len(ts), dtype=bool)
    if len(steps) >= 2:
        cpu = ~is_gpu
        step_rows = cpu & name_str.isin(steps).to_numpy()
        last_start = ts[step_rows].max() if step_rows.any() else np.nan
        cpu_kept = cpu & (ts < last_start)
        gpu_kept = is_gpu & np.isin(corr, corr[cpu_kept])
        rows = cpu_kept | gpu_kept
    k = rows & (stream != -1)
    return pd.DataFrame({"name": names[k], "ts": ts[k], "end": ts[k] + dur[k]})


def hta_breakdown(df: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """HTA 0.5's `get_temporal_breakdown` and `get_gpu_kernel_breakdown(include_memory_kernels=True)`.

    temporal: over the span from the first kernel start to the last kernel end, idle = span minus
    the union of all kernels; compute = union of COMPUTATION kernels; non-compute = the rest.
    kernel_types_us: a sweep over the unions of COMPUTATION, COMMUNICATION and MEMORY kernels;
    time when exactly one type runs goes to that type, time when several run goes to HTA's
    "A overlapping B" labels (in `kernel_types_overlap_us`). As in HTA each sweep segment is
    truncated to whole microseconds.
    """
    k = _hta_kernels(df, meta)
    negative = int((df["dur_us"].to_numpy() < 0).sum())
    out: dict[str, Any] = {
        "temporal": {"idle_pct": 0, "compute_pct": 0, "non_compute_pct": 0, "idle_us": 0, "compute_us": 0,
                     "non_compute_us": 0, "kernel_span_us": 0},
        "kernel_types_us": dict.fromkeys(HTA_TYPES, 0),
        "kernel_types_overlap_us": {},
        "kernel_types_pct": {},
        "gpu_kernels": len(k),
    }
    if negative:
        out["note"] = f"{negative} events with a negative duration were left out"
    if k.empty:
        out["note"] = "no GPU kernels in the trace (HTA raises an error here)"
        return out
    types = _map_names(k["name"].to_numpy(), hta_kernel_type)
    ts, end = k["ts"].to_numpy(), k["end"].to_numpy()
    ms, me = merge_intervals(ts, end)
    span = float(me[-1] - ms[0])
    run = float((me - ms).sum())
    idle = span - run
    comp = types == "COMPUTATION"
    compute = union_length(ts[comp], end[comp])
    non_compute = span - compute - idle
    pct = (lambda v: round(100.0 * v / span, 2)) if span > 0 else (lambda v: 0)
    out["temporal"] = {
        "idle_pct": pct(idle), "compute_pct": pct(compute), "non_compute_pct": pct(non_compute),
        "idle_us": _num(idle), "compute_us": _num(compute), "non_compute_us": _num(non_compute),
        "kernel_span_us": _num(span),
    }

    times, deltas = [], []
    for bit, kind in enumerate(HTA_TYPES):
        m = types == kind
        s, e = merge_intervals(ts[m], end[m])
        times += [s, e]
        deltas += [np.full(len(s), 1 << bit), np.full(len(e), -(1 << bit))]
    t = np.concatenate(times)
    dlt = np.concatenate(deltas)
    order = np.argsort(t, kind="stable")
    t, dlt = t[order], dlt[order]
    running = np.cumsum(dlt)
    seg = np.trunc(np.append(t[1:] - t[:-1], 0.0))
    totals: dict[str, float] = {}
    for value in np.unique(running[running > 0]):
        label = " overlapping ".join(kind for bit, kind in enumerate(HTA_TYPES) if value & (1 << bit))
        totals[label] = float(seg[running == value].sum())
    grand = sum(totals.values())
    out["kernel_types_us"] = {kind: _num(totals.get(kind, 0.0)) for kind in HTA_TYPES}
    out["kernel_types_overlap_us"] = {k2: _num(v) for k2, v in totals.items() if k2 not in HTA_TYPES}
    out["kernel_types_pct"] = {k2: round(100 * v / grand, 1) if grand else 0 for k2, v in totals.items()}
    return out
