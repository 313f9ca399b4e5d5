"""Read a trace file into one event table: Chrome/Kineto JSON (plain or gzip) and JAX/Perfetto JSON.

Why this is fast and bounded: the file is read in blocks, inflated as they come and cut into
pieces of whole events (`stream`), so the text is never held whole; each piece is decoded by
msgspec into small typed structs that hold only the fields the analyses use (no dict per
event, no `args` beyond the handful we read), turned into compact numpy columns (about 116
bytes an event) and dropped. Caps (settings `profile_max_json_bytes`, `profile_max_events`,
`profile_memory_bytes`) refuse what would not fit, with an error that names the setting. The
finished table is cached as Parquet beside the trace (or in the data directory when that
folder is read-only), keyed by a hash of the trace's bytes, so a changed trace is never served
stale.

The event table's schema (stable; `SCHEMA_VERSION` changes when it does):

=================  ========  =============================================================
column             dtype     meaning
=================  ========  =============================================================
``ph``             category  Chrome phase: X (complete), i/I (instant), s/f (flow), M, ...
``cat``            category  category (cpu_op, kernel, gpu_memcpy, ac2g, ...); NaN if none
``name``           category  event name
``pid``, ``tid``   int64     process / thread; non-numeric labels map to negative ids
                             (their text is in ``meta["pid_labels"]`` / ``["tid_labels"]``)
``ts_us``          float64   start, microseconds, as written in the file (NaN if missing)
``dur_us``         float64   duration, microseconds (NaN if missing)
``device``         int64     ``args.device`` (GPU events) or ``args["Device Id"]`` ([memory]
                             instants), or N for uncategorized events of a JAX
                             "/device:GPU:N" process; -1 if none
``stream``         int64     ``args.stream`` (the tid on JAX device lanes); -1 if none
``correlation``    int64     ``args.correlation`` (links a launch to its kernel); -1 if none
``external_id``    int64     ``args["External id"]``; -1 if none
``flow_id``        int64     ``id`` of flow events (s/f); -1 otherwise
``bytes``          int64     ``args.bytes`` (memcpy/memset) or ``args.Bytes`` ([memory]); -1
``mem_allocated``  int64     ``args["Total Allocated"]`` of [memory] instants; -1 otherwise
``mem_reserved``   int64     ``args["Total Reserved"]`` of [memory] instants; -1 otherwise
``grid``, ``block`` category  kernel launch geometry as "x,y,z"; NaN otherwise
=================  ========  =============================================================

Row order is the order of ``traceEvents`` in the file, so a row's index is its event index.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from workbench.profiles.stream import Limits, Pieces, TraceError, file_blocks, text_blocks

SCHEMA_VERSION = 2
CACHE_SUFFIX = ".wbcache.parquet"
GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")

__all__ = ["CACHE_SUFFIX", "EventColumns", "Limits", "TraceError", "parse", "parse_file"]


# -- typed decoding ----------------------------------------------------------------------------
_Num = int | float | None
_IntOrStr = int | str | None


class _Args(msgspec.Struct, gc=False):
    device: _IntOrStr = None
    stream: _IntOrStr = None
    correlation: _IntOrStr = None
    external_id: _IntOrStr = msgspec.field(default=None, name="External id")
    grid: Any = None  # [x, y, z], or text such as "[1, 1, 1]" in some traces
    block: Any = None
    bytes: _Num = None
    mem_bytes: _Num = msgspec.field(default=None, name="Bytes")
    total_allocated: _Num = msgspec.field(default=None, name="Total Allocated")
    total_reserved: _Num = msgspec.field(default=None, name="Total Reserved")
    device_id: _IntOrStr = msgspec.field(default=None, name="Device Id")
    name: Any = None  # process_name / thread_name metadata


class _Event(msgspec.Struct, gc=False):
    ph: str | None = None
    cat: str | None = None
    name: str | None = None
    pid: _IntOrStr = None
    tid: _IntOrStr = None
    ts: _Num = None
    dur: _Num = None
    id: _IntOrStr = None
    args: _Args | None = None


class _Trace(msgspec.Struct, gc=False):
    """The top level; the events stay raw JSON here and are decoded in chunks (`parse`)."""

    traceEvents: list[msgspec.Raw] | None = None
    baseTimeNanoseconds: _Num = None
    displayTimeUnit: str | None = None
    deviceProperties: list[Any] | None = None
    distributedInfo: Any = None


_DECODER = msgspec.json.Decoder(_Trace)
_ARRAY_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_CHUNK_DECODER = msgspec.json.Decoder(list[_Event])


@dataclass
class EventColumns:
    """The decoded trace as numpy columns plus what the file says about itself."""

    columns: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["ts_us"])


# -- reading the bytes -------------------------------------------------------------------------
def read_text(path: str | os.PathLike[str], limits: Limits | None = None) -> bytes:
    """The whole JSON text of a trace file (gunzipped), within the caps; for the few readers
    that need the document itself (export). Ingest streams instead (`parse_file`)."""
    limits = limits or Limits.from_settings()
    return b"".join(text_blocks(file_blocks(path), repr(str(path)), limits.max_json_bytes))


# -- building columns --------------------------------------------------------------------------
def _factor(events: list[Any], getter: Any) -> tuple[np.ndarray, list[Any]]:
    """Codes and distinct values of one field: two C-level passes (a dict of the distinct
    values, then a lookup per event), no Python loop per event. None gets code -1."""
    table = dict.fromkeys(map(getter, events))
    has_none = None in table
    table.pop(None, None)
    for i, key in enumerate(table):
        table[key] = i
    if has_none:
        table[None] = -1
    codes = np.fromiter(map(table.__getitem__, map(getter, events)), dtype=np.int32, count=len(events))
    if has_none:
        del table[None]
    return codes, list(table)


def _intern(values: Any) -> tuple[np.ndarray, list[str]]:
    table: dict[str, int] = {None: -1}  # type: ignore[dict-item]
    setdefault = table.setdefault
    codes = [setdefault(v, len(table) - 1) for v in values]
    del table[None]  # type: ignore[arg-type]
    return np.array(codes, dtype=np.int32), list(table)


def _as_int(v: Any, default: int = -1) -> int:
    if v is None:
        return default
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _ints(values: list[Any]) -> np.ndarray:
    """Integers (None and non-numeric text as -1); numpy's C loop when values are numbers or None."""
    try:
        as_float = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([v if type(v) is int else _as_int(v) for v in values], dtype=np.int64)
    if not len(as_float) or np.abs(as_float[np.isfinite(as_float)]).max(initial=0) < 2**53:
        return np.where(np.isfinite(as_float), as_float, -1).astype(np.int64)
    return np.array([v if type(v) is int else _as_int(v) for v in values], dtype=np.int64)


def _id_column(events: list[Any], getter: Any, labels: dict[int, str]) -> np.ndarray:
    """pid/tid per event: numpy's C loop when all are integers; else (text, missing) convert
    the few distinct values and index them by code."""
    if set(map(type, map(getter, events))) <= {int}:
        try:
            return np.fromiter(map(getter, events), dtype=np.int64, count=len(events))
        except OverflowError:
            pass
    codes, uniq = _factor(events, getter)
    ids = _ids(uniq, labels) if uniq else np.zeros(0, dtype=np.int64)
    out: np.ndarray = np.append(ids, 0)[codes]  # code -1 (missing) -> 0
    return out


def _ids(values: list[Any], labels: dict[int, str]) -> np.ndarray:
    """pid/tid: integers as they are; numeric strings parsed; other text gets a negative id."""
    odd = [i for i, v in enumerate(values) if type(v) is not int]
    if not odd:
        return np.array(values, dtype=np.int64)
    if len(odd) < len(values) // 2:
        out = np.array([0 if type(v) is not int else v for v in values], dtype=np.int64)
        out[odd] = _ids([values[i] for i in odd], labels)
        return out
    by_text: dict[str, int] = {v: k for k, v in labels.items()}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if type(v) is int:
            out[i] = v
        elif v is None:
            out[i] = 0
        else:
            n = _as_int(v, default=None)  # type: ignore[arg-type]
            if n is None:
                text = str(v)
                if text not in by_text:
                    by_text[text] = -(len(by_text) + 1)
                    labels[by_text[text]] = text
                n = by_text[text]
            out[i] = n
    return out


def _floats(values: list[Any]) -> tuple[np.ndarray, bool]:
    """The values as float64 (None as NaN), and whether any was not an integer in the JSON
    (what makes pandas, and so HolisticTraceAnalysis, treat the column as float)."""
    fast = np.array(values)
    if fast.dtype == np.int64:
        return fast.astype(np.float64), False
    if fast.dtype == np.float64:
        return fast, True
    nan = math.nan
    return np.array([nan if v is None else v for v in values], dtype=np.float64), True


def _float_column(events: list[Any], getter: Any) -> tuple[np.ndarray, bool]:
    """`_floats` of one field, with numpy's C loop when every value is an integer."""
    kinds = set(map(type, map(getter, events)))
    if kinds <= {int, float} and len(events):
        return np.fromiter(map(getter, events), dtype=np.float64, count=len(events)), float in kinds
    return _floats(list(map(getter, events)))


def _geometry_codes(values: list[Any]) -> tuple[np.ndarray, list[str | None]]:
    """Launch geometries ([x, y, z] lists, or text) as codes of "x,y,z" categories."""
    keys = [tuple(v) if type(v) is list else v for v in values]
    codes, uniq = _intern(keys)
    return codes, [_geometry(list(u) if isinstance(u, tuple) else u) for u in uniq]


def _geometry(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v).strip("[]() ").replace(" ", "")


_CATEGORICAL = ("ph", "cat", "name", "grid", "block")
CHUNK_EVENTS = 16384  # decode this many events at a time: peak memory stays a fraction of the text


@dataclass
class _State:
    """What persists across chunks: id labels, metadata names, whether any ts was a float."""

    pid_labels: dict[int, str] = field(default_factory=dict)
    tid_labels: dict[int, str] = field(default_factory=dict)
    process_names: dict[int, str] = field(default_factory=dict)
    thread_names: dict[str, str] = field(default_factory=dict)
    ts_is_float: bool = False


def _chunk_columns(events: list[_Event], state: _State) -> dict[str, Any]:
    """Columns of one chunk of events (categoricals with chunk-local categories)."""
    n = len(events)

    def field_(name: str) -> list[Any]:
        return list(map(attrgetter(name), events))

    pid = _id_column(events, attrgetter("pid"), state.pid_labels)
    tid = _id_column(events, attrgetter("tid"), state.tid_labels)
    ts, ts_is_float = _float_column(events, attrgetter("ts"))
    state.ts_is_float |= ts_is_float
    dur, _ = _float_column(events, attrgetter("dur"))

    flow_id = np.full(n, -1, dtype=np.int64)
    ids = list(map(attrgetter("id"), events))
    flows = [i for i, v in enumerate(ids) if v is not None and events[i].ph in ("s", "f", "t")]
    if flows:
        flow_id[flows] = _ints([ids[i] for i in flows])
    del ids

    # Only events with args carry the rest; each column is one pass over those.
    all_args = list(map(attrgetter("args"), events))
    rows_list = [i for i, a in enumerate(all_args) if a is not None]
    args = [all_args[i] for i in rows_list]
    del all_args
    rows = np.array(rows_list, dtype=np.int64)

    def column(name: str, fallback: str | None = None) -> np.ndarray:
        out = np.full(n, -1, dtype=np.int64)
        values = _ints(list(map(attrgetter(name), args)))
        if fallback is not None:
            values = np.where(values == -1, _ints(list(map(attrgetter(fallback), args))), values)
        out[rows] = values
        return out

    grids = list(map(attrgetter("grid"), args))
    launched = [i for i, g in enumerate(grids) if g is not None]
    grid_codes = np.full(n, -1, dtype=np.int32)
    block_codes = np.full(n, -1, dtype=np.int32)
    grid_cats: list[str | None] = []
    block_cats: list[str | None] = []
    if launched:
        at = rows[launched]
        grid_codes[at], grid_cats = _geometry_codes([grids[i] for i in launched])
        block_codes[at], block_cats = _geometry_codes([args[i].block for i in launched])
    for i, a in zip(rows_list, args, strict=True):
        if a.name is not None and isinstance(a.name, str) and events[i].ph == "M":
            if events[i].name == "process_name":
                state.process_names[int(pid[i])] = a.name
            elif events[i].name == "thread_name":
                state.thread_names[f"{int(pid[i])}:{int(tid[i])}"] = a.name

    return {
        "ph": _factor(events, attrgetter("ph")),
        "cat": _factor(events, attrgetter("cat")),
        "name": _factor(events, attrgetter("name")),
        "pid": pid,
        "tid": tid,
        "ts_us": ts,
        "dur_us": dur,
        "device": column("device", "device_id"),
        "stream": column("stream"),
        "correlation": column("correlation"),
        "external_id": column("external_id"),
        "flow_id": flow_id,
        "bytes": column("bytes", "mem_bytes"),
        "mem_allocated": column("total_allocated"),
        "mem_reserved": column("total_reserved"),
        "grid": (grid_codes, grid_cats),
        "block": (block_codes, block_cats),
    }


def _release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's `malloc_trim`).

    Why: the chunks' columns are many arrays of ~100 KB, which glibc serves from its heap once
    its mmap threshold has grown; freed there, they stay in the process (scattered between
    live ones) while the joined column is allocated anew, so without this the peak is twice
    the table's size. A no-op where the C library has no `malloc_trim`."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One set of columns from the chunks': categoricals re-coded onto shared categories."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for name in list(parts[0]):  # column by column, each part's copy dropped once joined
        _release_freed_memory()
        if name in _CATEGORICAL:
            table: dict[str, int] = {}
            coded = []
            for part in parts:
                codes, cats = part.pop(name)
                remap = np.array([table.setdefault(c, len(table)) for c in cats] + [-1], dtype=np.int32)
                coded.append(remap[codes])  # code -1 picks the trailing -1
            out[name] = (np.concatenate(coded), list(table))
        else:
            out[name] = np.concatenate([part.pop(name) for part in parts])
    return out


_DEVICE_LANE = re.compile(r"^/device:(GPU|TPU):(\d+)")


def _mark_device_lanes(columns: dict[str, Any], process_names: dict[int, str]) -> None:
    """JAX/XLA traces put device work in processes named "/device:GPU:N" with no category:
    give those complete events `device` N and their thread as `stream`, so the GPU analyses
    (not the Kineto-defined summary) see them."""
    lanes = {pid: int(m.group(2)) for pid, name in process_names.items() if (m := _DEVICE_LANE.match(name))}
    if not lanes:
        return
    ph_codes, ph_cats = columns["ph"]
    if "X" not in ph_cats:
        return
    pid = columns["pid"]
    rows = np.isin(pid, list(lanes)) & (ph_codes == ph_cats.index("X")) & (columns["cat"][0] < 0)
    columns["device"][rows] = np.array([lanes[p] for p in pid[rows].tolist()], dtype=np.int64)
    columns["stream"][rows] = columns["tid"][rows]


def build_columns(trace: _Trace, parts: list[dict[str, Any]], state: _State) -> EventColumns:
    columns = _combine(parts) if parts else _chunk_columns([], state)
    _mark_device_lanes(columns, state.process_names)
    n = len(columns["ts_us"])
    device_names = []
    for p in trace.deviceProperties or []:
        if isinstance(p, dict) and "name" in p:
            device_names.append(str(p["name"]))
    meta = {
        "schema_version": SCHEMA_VERSION,
        "events": n,
        "ts_is_float": bool(state.ts_is_float),
        "base_time_ns": None if trace.baseTimeNanoseconds is None else int(trace.baseTimeNanoseconds),
        "display_time_unit": trace.displayTimeUnit,
        "device_names": device_names,
        "vendor": _vendor(device_names, state.process_names),
        "process_names": {str(k): v for k, v in state.process_names.items()},
        "thread_names": state.thread_names,
        "pid_labels": {str(k): v for k, v in state.pid_labels.items()},
        "tid_labels": {str(k): v for k, v in state.tid_labels.items()},
        "format": _format(columns["cat"][1], state.process_names),
        "distributed_rank": _rank(trace.distributedInfo),
    }
    return EventColumns(columns=columns, meta=meta)


def _rank(info: Any) -> int | None:
    """``distributedInfo.rank`` when it is a whole number (torch.profiler writes it)."""
    rank = info.get("rank") if isinstance(info, dict) else None
    return rank if type(rank) is int and 0 <= rank < 2**31 else None


def _vendor(device_names: list[str], process_names: dict[int, str]) -> str | None:
    text = " ".join(device_names + list(process_names.values())).lower()
    if any(k in text for k in ("nvidia", "tesla", "geforce", "a100", "h100", "v100")):
        return "nvidia"
    if any(k in text for k in ("amd", "instinct", "radeon", "mi250", "mi300", "gfx")):
        return "amd"
    if "/device:tpu" in text or "tpu" in text.split():
        return "google"
    return None


def _format(cats: list[str], process_names: dict[int, str]) -> str:
    if any(c in ("cpu_op", "kernel", "cuda_runtime", "user_annotation", "python_function") for c in cats):
        return "kineto"
    if any(v.startswith(("/host:", "/device:")) for v in process_names.values()):
        return "jax"
    return "chrome"


MAX_TIME_US = float(2**53)  # about 285 years in µs: beyond it a float no longer holds whole µs


def parse(data: bytes, label: str, limits: Limits | None = None) -> EventColumns:
    """Decode trace text (JSON, plain or gzip) into columns; see `parse_blocks`."""
    return parse_blocks([data], label, limits)


def parse_file(path: str | os.PathLike[str], limits: Limits | None = None) -> EventColumns:
    """Decode a trace file into columns, reading it in blocks; see `parse_blocks`."""
    return parse_blocks(file_blocks(path), repr(str(path)), limits)


def parse_blocks(raw_blocks: Iterable[bytes], label: str, limits: Limits | None = None) -> EventColumns:
    """Decode a trace's bytes into columns. Raises `TraceError` with what is wrong and where.

    The text is inflated and cut into pieces of whole events as it arrives (`stream.Pieces`);
    each piece is decoded into typed structs, turned into compact numpy columns and dropped, so
    the text is never held whole and the columns are what grows. Caps: `Limits`."""
    limits = limits or Limits.from_settings()
    was_enabled = gc.isenabled()
    gc.disable()  # a 100k-event decode allocates many small objects; collection passes only cost
    try:
        pieces = Pieces(text_blocks(raw_blocks, label, limits.max_json_bytes), label, limits)
        state = _State()
        parts = []
        for offset, events in pieces.chunks():
            if offset + len(events) > limits.max_events:
                raise TraceError(f"{label} has more than {limits.max_events:,} events (the cap is the setting "
                                 "profile_max_events, WORKBENCH_PROFILE_MAX_EVENTS; raise it for a larger trace)")
            for start in range(0, len(events), CHUNK_EVENTS):
                part = events[start : start + CHUNK_EVENTS]
                parts.append(_checked_columns(part, state, offset + start, label))
            del events, part
            _release_freed_memory()
        return build_columns(pieces.trace, parts, state)
    finally:
        if was_enabled:
            gc.enable()


_INT_FIELDS = ("pid", "tid", "id", "ts", "dur")
_ARG_INT_FIELDS = ("device", "stream", "correlation", "external_id", "bytes", "mem_bytes", "total_allocated",
                   "total_reserved", "device_id")


def _checked_columns(events: list[_Event], state: _State, offset: int, label: str) -> dict[str, Any]:
    """`_chunk_columns`, with the values no column can hold reported by event."""
    try:
        cols = _chunk_columns(events, state)
    except OverflowError:
        raise _overflow(events, offset, label) from None
    for name, field_name in (("ts_us", "ts"), ("dur_us", "dur")):
        bad = np.flatnonzero(np.abs(cols[name]) >= MAX_TIME_US)
        if len(bad):
            i = offset + int(bad[0])
            raise TraceError(f"{label}: event #{i} ($.traceEvents[{i}].{field_name}) is out of range: a time in µs "
                             f"must be finite and below 2^53 (about 285 years) in magnitude")
    return cols


def _overflow(events: list[_Event], offset: int, label: str) -> TraceError:
    """Which event has an integer that int64 cannot hold (the only overflow the columns meet)."""
    def too_big(v: Any) -> bool:
        return type(v) is int and not -(2**63) <= v < 2**63

    for i, e in enumerate(events):
        where = next((f for f in _INT_FIELDS if too_big(getattr(e, f))), None)
        if where is None and e.args is not None:
            where = next((f"args.{f}" for f in _ARG_INT_FIELDS if too_big(getattr(e.args, f))), None)
        if where is not None:
            return TraceError(f"{label}: event #{offset + i} ($.traceEvents[{offset + i}].{where}) is an integer "
                              "beyond 64 bits; ids and sizes must fit in a signed 64-bit integer")
    return TraceError(f"{label}: an integer in events #{offset}..#{offset + len(events) - 1} is beyond 64 bits")


# -- cache --------------------------------------------------------------------------------------
def content_key(path: str | os.PathLike[str]) -> str:
    """A hash of the trace file's bytes, read in blocks."""
    from workbench.profiles.stream import content_key as key_of

    return key_of(path, SCHEMA_VERSION)


def cache_path_for(trace_path: Path, key: str, fallback_dir: Path | None) -> Path:
    """Beside the trace when its folder is writable, else in `fallback_dir`."""
    name = f"{trace_path.name}.{key}{CACHE_SUFFIX}"
    if os.access(trace_path.parent, os.W_OK):
        return trace_path.parent / name
    if fallback_dir is None:
        from workbench.config import load_settings

        fallback_dir = load_settings().home / "cache" / "profiles"
    return Path(fallback_dir) / name
