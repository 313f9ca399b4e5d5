"""The event table: a pandas DataFrame with categoricals, built from decoded columns or reopened
from its Parquet cache. `open_table` is the one entry point (see `ingest` for the schema)."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from workbench.profiles import ingest
from workbench.profiles.ingest import CACHE_SUFFIX, EventColumns

if TYPE_CHECKING:
    import pandas as pd

_META_KEY = b"workbench.profile"
_CATEGORICAL = ("ph", "cat", "name", "grid", "block")


@dataclass
class TraceTable:
    """The events of one trace, what the file says about itself, and where it was cached."""

    events: pd.DataFrame
    meta: dict[str, Any]
    path: Path | None = None
    cache_path: Path | None = None
    from_cache: bool = False


def frame(cols: EventColumns) -> pd.DataFrame:
    import pandas as pd

    data: dict[str, Any] = {}
    for name, value in cols.columns.items():
        if name in _CATEGORICAL:
            codes, cats = value
            data[name] = pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype="str"), validate=False)
        else:
            data[name] = value
    return pd.DataFrame(data, copy=False)


def _numbers(values: np.ndarray) -> Any:
    """An Arrow array over a numpy array's memory. Built from buffers because `pa.array`
    imports pandas to inspect its argument, and a cold `profiles summary` needs no pandas."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _strings(values: list[str]) -> Any:
    """An Arrow string array of Python strings, from buffers (see `_numbers`)."""
    import pyarrow as pa

    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    kind, width = (pa.string(), np.int32) if offsets[-1] < 2**31 else (pa.large_string(), np.int64)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(offsets.astype(width)), pa.py_buffer(b"".join(encoded))])


def _arrow_table(cols: EventColumns, meta: dict[str, Any]) -> Any:
    import pyarrow as pa

    arrays, names = [], []
    for name, value in cols.columns.items():
        if name in _CATEGORICAL:
            codes, cats = value
            missing = codes < 0
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None
            indices = pa.Array.from_buffers(pa.int32(), len(codes), [validity, pa.py_buffer(np.ascontiguousarray(codes, dtype=np.int32))],
                                            null_count=int(missing.sum()))
            arrays.append(pa.DictionaryArray.from_arrays(indices, _strings(cats)))
        else:
            arrays.append(_numbers(value))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names, metadata={_META_KEY: orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS)})


def write_cache(cols: EventColumns, meta: dict[str, Any], target: Path) -> Path | None:
    """Write atomically (temp file + rename); drop older caches of the same trace. None if it cannot."""
    import pyarrow.parquet as pq

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".wbcache-", dir=target.parent)
        os.close(fd)
        try:
            pq.write_table(_arrow_table(cols, meta), tmp, compression="none", write_statistics=False,
                           use_dictionary=list(_CATEGORICAL))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return None
    trace_name = target.name[: -len(CACHE_SUFFIX)].rsplit(".", 1)[0]
    for old in target.parent.glob(glob.escape(trace_name) + ".*" + CACHE_SUFFIX):
        middle = old.name[len(trace_name) + 1 : -len(CACHE_SUFFIX)]
        if old != target and "." not in middle:
            with contextlib.suppress(OSError):
                old.unlink()
    return target


def read_cache(target: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(target, memory_map=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign cache is rebuilt, never trusted
        return None
    raw_meta = (table.schema.metadata or {}).get(_META_KEY)
    if raw_meta is None:
        return None
    meta = orjson.loads(raw_meta)
    return table.to_pandas(), meta


def read_cached_meta(target: Path) -> dict[str, Any] | None:
    """Only the metadata (with the stored summary), without reading the columns."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(target)
    except Exception:  # noqa: BLE001 - as in read_cache: a bad cache means "no cache"
        return None
    raw = (schema.metadata or {}).get(_META_KEY)
    return None if raw is None else orjson.loads(raw)


def open_table(
    path: str | os.PathLike[str],
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    fallback_dir: str | os.PathLike[str] | None = None,
    limits: ingest.Limits | None = None,
) -> TraceTable:
    """The event table of a trace file; from the Parquet cache when it matches the file's bytes.

    `cache_dir` forces where the cache lives; otherwise it is beside the trace, or in
    `fallback_dir` (default: the data directory's cache) when the trace's folder is read-only.
    `limits` caps the ingest (default: the settings' `profile_*` caps).
    """
    p = Path(path)
    key = ingest.content_key(p)
    target: Path | None = None
    if cache:
        if cache_dir is not None:
            target = Path(cache_dir) / f"{p.name}.{key}{CACHE_SUFFIX}"
        else:
            target = ingest.cache_path_for(p, key, None if fallback_dir is None else Path(fallback_dir))
        if target.exists():
            hit = read_cache(target)
            if hit is not None:
                df, meta = hit
                return TraceTable(df, meta, p, target, True)
    cols, meta, written = _ingest(p, key, target, limits)
    return TraceTable(frame(cols), meta, p, written, False)


def _ingest(p: Path, key: str, target: Path | None, limits: ingest.Limits | None) -> tuple[EventColumns, dict[str, Any], Path | None]:
    """Decode, summarize and cache a trace, with numpy and pyarrow only (no pandas)."""
    from workbench.profiles.summary import summary_of_columns

    cols = ingest.parse_file(p, limits)
    meta = dict(cols.meta, key=key, source=str(p))
    meta["summary"] = summary_of_columns(cols.columns, meta)
    ingest._release_freed_memory()  # the summary's temporaries, before the writer's buffers
    written = write_cache(cols, meta, target) if target is not None else None
    return cols, meta, written


def summarize(path: str | os.PathLike[str], *, fallback_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The summary of a trace file: from its cache's metadata alone when the cache matches."""
    p = Path(path)
    key = ingest.content_key(p)
    target = ingest.cache_path_for(p, key, None if fallback_dir is None else Path(fallback_dir))
    if target.exists():
        meta = read_cached_meta(target)
        if meta is not None and "summary" in meta:
            summary: dict[str, Any] = meta["summary"]
            return summary
    summary = _ingest(p, key, target, None)[1]["summary"]
    return summary


