"""The `workbench profiles summary --json` object, from the decoded columns with numpy alone.

Why apart from `analysis`: a cold `workbench profiles summary` ingests, summarizes and writes the
cache without importing pandas (a third of a second to import, more than the rest of a small
trace's work); `analysis.summary_of` gives the same object for an event table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.profiles.ingest import GPU_CATEGORIES


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted intervals covering the union of `[start, end)`; touching ones join."""
    if len(starts) == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, dtype=np.float64)[order], np.asarray(ends, dtype=np.float64)[order]
    reach = np.maximum.accumulate(e)
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first)


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    ms, me = merge_intervals(starts, ends)
    return float((me - ms).sum())


def _num(x: float) -> int | float:
    """JSON-friendly: an integral float as an int, else rounded to the nanosecond."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return 0
    x = round(float(x), 3)
    return int(x) if x.is_integer() else x


def _is(coded: tuple[np.ndarray, list[Any]], *values: str) -> np.ndarray:
    """Rows whose categorical value (codes, categories) is one of `values`."""
    codes, cats = coded
    table = np.zeros(len(cats) + 1, dtype=bool)  # the last entry answers code -1 (missing)
    table[[i for i, c in enumerate(cats) if c in values]] = True
    out: np.ndarray = table[codes]
    return out


def summary_of_columns(columns: dict[str, Any], meta: dict[str, Any], *, top: int = 20) -> dict[str, Any]:
    """The summary from columns: ``ph``, ``cat``, ``name`` as (codes, categories); ``ts_us``,
    ``dur_us``, ``device``, ``pid`` as arrays (the schema of `workbench.profiles.ingest`).

    X events whose duration is missing or negative are counted but add nothing to any time;
    `warnings` says how many there were, so no number is silently wrong.
    """
    dur, ts = columns["dur_us"], columns["ts_us"]
    x = _is(columns["ph"], "X")
    ok = np.isfinite(dur) & (dur >= 0) & np.isfinite(ts)
    kern = x & _is(columns["cat"], "kernel")
    cpu = x & _is(columns["cat"], "cpu_op")

    name_codes, names = columns["name"]
    k_codes = name_codes[kern]
    k_dur = np.where(ok[kern], dur[kern], 0.0)
    present = k_codes >= 0
    counts = np.bincount(k_codes[present], minlength=len(names))
    sums = np.bincount(k_codes[present], weights=k_dur[present], minlength=len(names))
    seen = np.flatnonzero(counts)
    label = np.array([str(names[i]) for i in seen], dtype=object)
    order = seen[np.lexsort((label, -sums[seen]))][: max(top, 10)]
    top_kernels = [{"name": str(names[i]), "count": int(counts[i]), "total_us": _num(sums[i])} for i in order]

    g = x & _is(columns["cat"], *GPU_CATEGORIES) & ok
    busy = span = 0.0
    devices: dict[str, dict[str, Any]] = {}
    if g.any():
        start = ts[g]
        end = start + dur[g]
        dev = columns["device"][g].astype(np.int64)
        dev = np.where(dev >= 0, dev, columns["pid"][g])
        for d in np.unique(dev):
            m = dev == d
            b = union_length(start[m], end[m])
            s = float(end[m].max() - start[m].min())
            busy += b
            span += s
            devices[str(int(d))] = {"busy_us": _num(b), "span_us": _num(s)}

    warnings = []
    missing = int((x & ~np.isfinite(dur)).sum())
    negative = int((x & (dur < 0)).sum())
    if missing:
        warnings.append(f"{missing} complete (X) events have no duration; counted, with no time")
    if negative:
        warnings.append(f"{negative} complete (X) events have a negative duration; counted, with no time")
    if meta.get("vendor") == "amd":
        warnings.append("AMD (ROCm) trace: GPU events are read with the same Kineto categories")
    return {
        "events": int(meta.get("events", len(dur))),
        "kernels": {"count": int(kern.sum()), "total_us": _num(dur[kern & ok].sum())},
        "top_kernels": top_kernels,
        "cpu_ops": {"count": int(cpu.sum()), "total_us": _num(dur[cpu & ok].sum())},
        "gpu_busy_us": _num(busy),
        "gpu_span_us": _num(span),
        "gpu_idle_share": float(1.0 - busy / span) if span > 0 else 0,
        "gpu_devices": devices,
        "warnings": warnings,
    }
