"""Property tests of trace ingestion (issue 19, point 9): random valid Chrome traces ingest to the
same table as a reference loader written from the schema with the standard library; random
corruptions of them never raise anything but our own error."""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.profiles.ingest import Limits, parse
from workbench.profiles.table import frame

PIECES = Limits(memory_bytes=64 << 10)  # 1 KiB pieces: most generated traces are cut
INT64 = st.integers(-(2**63), 2**63 - 1)
TIME = st.one_of(st.integers(-(2**40), 2**40), st.floats(-1e12, 1e12, allow_nan=False))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(["},{", '"]', "\\"])
GEOMETRY = st.lists(st.integers(0, 2**31), min_size=3, max_size=3)

ARGS = st.fixed_dictionaries({}, optional={
    "device": st.integers(0, 2**40), "stream": INT64, "correlation": INT64, "External id": INT64,
    "bytes": st.integers(0, 2**62), "Device Id": st.integers(0, 64), "grid": GEOMETRY, "block": GEOMETRY,
    "other": st.recursive(st.none() | st.integers() | TEXT, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
})
EVENT = st.fixed_dictionaries({}, optional={
    "ph": st.sampled_from(["X", "i", "s", "f", "B", "E", "C"]), "cat": st.sampled_from(["kernel", "cpu_op", "gpu_memcpy", "x y"]),
    "name": TEXT, "pid": st.integers(-(2**62), 2**62) | st.sampled_from(["Traces", "12", ""]), "tid": INT64 | TEXT,
    "ts": TIME, "dur": TIME, "id": st.integers(0, 2**62), "args": ARGS,
})
TRACE = st.lists(EVENT, max_size=40)


def _text_or_nan(v: Any) -> Any:
    return v if isinstance(v, str) else math.nan


def _int(v: Any) -> int:
    return v if type(v) is int else -1


def reference_table(doc: dict[str, Any]) -> pd.DataFrame:
    """The schema of `workbench.profiles.ingest`, read literally, one event at a time."""
    rows = []
    for e in doc["traceEvents"]:
        a = e.get("args") or {}
        dev = _int(a.get("device"))
        nbytes = _int(a.get("bytes"))
        grid = a.get("grid")
        rows.append({
            "ph": _text_or_nan(e.get("ph")), "cat": _text_or_nan(e.get("cat")), "name": _text_or_nan(e.get("name")),
            "pid": e.get("pid", 0), "tid": e.get("tid", 0),
            "ts_us": float(e["ts"]) if "ts" in e else math.nan, "dur_us": float(e["dur"]) if "dur" in e else math.nan,
            "device": dev if dev != -1 else _int(a.get("Device Id")), "stream": _int(a.get("stream")),
            "correlation": _int(a.get("correlation")), "external_id": _int(a.get("External id")),
            "flow_id": e["id"] if "id" in e and e.get("ph") in ("s", "f", "t") else -1,
            "bytes": nbytes, "mem_allocated": -1, "mem_reserved": -1,
            "grid": ",".join(map(str, grid)) if grid is not None else math.nan,
            "block": ",".join(map(str, a["block"])) if grid is not None and "block" in a else math.nan,
        })
    return pd.DataFrame(rows)


def _same(ours: pd.DataFrame, ref: pd.DataFrame, meta: dict[str, Any]) -> None:
    assert len(ours) == len(ref)
    for col in ref.columns:
        got, want = ours[col].tolist(), ref[col].tolist()
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if col in ("pid", "tid") and isinstance(w, str):
                if w.lstrip("-").isdigit():
                    assert g == int(w), (col, i)
                else:  # text ids: a stable negative id whose label is the text
                    assert g < 0 and meta[f"{col}_labels"][str(g)] == w, (col, i)
            elif isinstance(w, float) and math.isnan(w):
                assert isinstance(g, float) and math.isnan(g), (col, i, g)
            else:
                assert g == w, (col, i, g, w)


def _dump(events: list[dict[str, Any]], indent: int | None, zipped: bool) -> bytes:
    raw = json.dumps({"schemaVersion": 1, "traceEvents": events, "traceName": "t"}, indent=indent).encode()
    return gzip.compress(raw) if zipped else raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRACE, st.sampled_from([None, 0, 2]), st.booleans(), st.booleans())
def test_valid_traces_ingest_as_the_reference_reads_them(events: list[dict[str, Any]], indent: int | None,
                                                         zipped: bool, cut: bool) -> None:
    cols = parse(_dump(events, indent, zipped), "fuzz", PIECES if cut else None)
    _same(frame(cols), reference_table({"traceEvents": events}), cols.meta)


MUTATION = st.tuples(st.sampled_from(["cut", "flip", "insert", "delete", "repeat"]), st.floats(0, 1), st.binary(min_size=1, max_size=6))


def _mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    for kind, where, junk in mutations:
        at = int(where * len(data))
        if kind == "cut":
            data = data[:at]
        elif kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ junk[0]]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + junk + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + len(junk) :]
        else:
            data = data[:at] + data[at // 2 : at] + data[at:]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRACE, st.lists(MUTATION, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_corrupt_traces_raise_only_our_error(events: list[dict[str, Any]], mutations: list[tuple[str, float, bytes]],
                                             zipped: bool, cut: bool) -> None:
    data = _mutate(_dump(events, None, False), mutations)
    if zipped:
        data = _mutate(gzip.compress(data), mutations[:1])
    try:
        parse(data, "fuzz", PIECES if cut else None)
    except WorkbenchError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
