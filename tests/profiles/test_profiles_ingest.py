"""Ingest: every real trace, the Parquet cache, and each kind of bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from profiles_helpers import ALL_TRACES, TRACES, cpu, kernel

from workbench.errors import NotFound, WorkbenchError
from workbench.profiles.ingest import CACHE_SUFFIX, TraceError
from workbench.profiles.table import open_table

SCHEMA = {
    "ph": "category", "cat": "category", "name": "category", "pid": "int64", "tid": "int64", "ts_us": "float64",
    "dur_us": "float64", "device": "int64", "stream": "int64", "correlation": "int64", "external_id": "int64",
    "flow_id": "int64", "bytes": "int64", "mem_allocated": "int64", "mem_reserved": "int64", "grid": "category",
    "block": "category",
}


@pytest.mark.parametrize("name", ALL_TRACES)
def test_every_real_trace_ingests_with_the_documented_schema(name: str) -> None:
    t = open_table(TRACES / name, cache=False)
    assert {c: str(t.events[c].dtype) for c in t.events.columns} == SCHEMA
    raw = json.loads(gzip.decompress((TRACES / name).read_bytes()))
    events = raw["traceEvents"]
    assert len(t.events) == len(events) == t.meta["events"]
    # spot-check row i against event i (row order is file order)
    for i in np.linspace(0, len(events) - 1, 25).astype(int):
        e, row = events[i], t.events.iloc[i]
        assert row["ph"] == e.get("ph")
        assert (row["name"] if isinstance(row["name"], str) else None) == e.get("name")
        if "dur" in e:
            assert row["dur_us"] == pytest.approx(e["dur"])
        if isinstance(e.get("args"), dict) and isinstance(e["args"].get("correlation"), int):
            assert row["correlation"] == e["args"]["correlation"]
    kernels = [(i, e) for i, e in enumerate(events) if e.get("cat") == "kernel" and isinstance(e["args"].get("grid"), list)]
    for i, e in kernels[:50]:
        assert t.events["grid"].iloc[i] == ",".join(map(str, e["args"]["grid"]))
        assert t.events["block"].iloc[i] == ",".join(map(str, e["args"]["block"]))
        assert t.events["stream"].iloc[i] == e["args"]["stream"] and t.events["device"].iloc[i] == e["args"]["device"]


def test_parquet_cache_is_reused_and_invalidated_by_a_changed_trace(trace_copy) -> None:
    path = trace_copy("alexnet_a100.json.gz")
    cold = open_table(path)
    assert not cold.from_cache and cold.cache_path is not None and cold.cache_path.parent == path.parent
    warm = open_table(path)
    assert warm.from_cache
    assert warm.events.equals(cold.events)
    assert warm.meta["summary"] == cold.meta["summary"]

    # Same size and mtime but different bytes must still invalidate: the key is the content.
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc["traceEvents"] = doc["traceEvents"][:-1]
    stat = path.stat()
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = open_table(path)
    assert not changed.from_cache
    assert changed.meta["events"] == cold.meta["events"] - 1
    caches = list(path.parent.glob(f"*{CACHE_SUFFIX}"))
    assert caches == [changed.cache_path], "the stale cache is removed"


def test_a_damaged_cache_is_rebuilt(trace_copy) -> None:
    path = trace_copy("compare_base.json.gz")
    first = open_table(path)
    first.cache_path.write_bytes(b"not parquet")
    again = open_table(path)
    assert not again.from_cache and again.events.equals(first.events)


def test_read_only_trace_folder_caches_in_the_data_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(TRACES / "compare_base.json.gz", ro)
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write to read-only folders (root)")
        t = open_table(ro / "compare_base.json.gz", fallback_dir=tmp_path / "cache")
        assert t.cache_path is not None and t.cache_path.parent == tmp_path / "cache"
        assert open_table(ro / "compare_base.json.gz", fallback_dir=tmp_path / "cache").from_cache
    finally:
        ro.chmod(0o755)


def test_read_only_fallback_is_chosen_by_writability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as above for root (who can write anywhere): the decision follows os.access."""
    from workbench.profiles import ingest

    shutil.copy(TRACES / "compare_base.json.gz", tmp_path)
    real_access = os.access
    monkeypatch.setattr(ingest.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    t = open_table(tmp_path / "compare_base.json.gz", fallback_dir=tmp_path / "fallback")
    assert t.cache_path.parent == tmp_path / "fallback"


def test_plain_json_and_baseTimeNanoseconds(write_trace) -> None:
    path = write_trace([kernel("k", 1.5, 2.25)], name="plain.json", baseTimeNanoseconds=1719853884000000000)
    t = open_table(path, cache=False)
    assert t.meta["base_time_ns"] == 1719853884000000000
    assert t.meta["ts_is_float"] is True
    assert t.events["ts_us"].iloc[0] == 1.5


@pytest.mark.parametrize("ts, is_float", [([1, 2], False), ([1, 2.0], True), ([1, None], True)])
def test_float_timestamps_are_detected_as_pandas_would(write_trace, ts, is_float) -> None:
    """HTA rounds events inward on traces whose ts column is float (any float, or any missing)."""
    events = [{"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 1, "dur": 1, **({} if t is None else {"ts": t})} for t in ts]
    assert open_table(write_trace(events), cache=False).meta["ts_is_float"] is is_float


def test_events_are_decoded_in_chunks_with_shared_categories(write_trace, monkeypatch) -> None:
    from workbench.profiles import ingest

    monkeypatch.setattr(ingest, "CHUNK_EVENTS", 3)
    events = [kernel(f"k{i % 4}", i * 10, 5, corr=i, stream=7 + i % 2) for i in range(10)] + [{"ph": "X", "dur": "x"}]
    with pytest.raises(TraceError, match=r"traceEvents\[10\]\.dur"):
        open_table(write_trace(events), cache=False)
    t = open_table(write_trace(events[:10]), cache=False)
    assert t.events["name"].tolist() == [f"k{i % 4}" for i in range(10)]
    assert t.events["stream"].tolist() == [7 + i % 2 for i in range(10)]
    assert t.events["correlation"].tolist() == list(range(10))


def test_json_array_format_and_unterminated_array(write_trace) -> None:
    events = [kernel("k", 0, 10), kernel("k", 20, 10)]
    full = write_trace(raw=json.dumps(events).encode(), name="array.json")
    assert len(open_table(full, cache=False).events) == 2
    cut = write_trace(raw=json.dumps(events).encode()[:-1] + b",\n", name="cut.json")
    assert len(open_table(cut, cache=False).events) == 2


def test_text_pids_and_tids_get_stable_negative_ids(write_trace) -> None:
    path = write_trace([{"ph": "i", "name": "x", "pid": "Traces", "tid": "Trace PyTorch Profiler", "ts": 1},
                        {"ph": "i", "name": "y", "pid": "", "tid": "", "ts": 2}, cpu("op", 0, 1)])
    t = open_table(path, cache=False)
    pids = t.events["pid"].tolist()
    assert pids[0] < 0 and pids[1] < 0 and pids[0] != pids[1] and pids[2] == 100
    assert t.meta["pid_labels"][str(pids[0])] == "Traces"


# -- bad input ---------------------------------------------------------------------------------


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    data = (TRACES / "alexnet_a100.json.gz").read_bytes()
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated gzip"):
        open_table(path, cache=False)


def test_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(TraceError, match="not a valid gzip"):
        open_table(path, cache=False)


@pytest.mark.parametrize("raw, message", [
    (b"hello, I am not JSON", "not JSON"),
    (b"{\"traceEvents\": [", "not valid JSON"),
    (b"   ", "no JSON"),
    (b"", "empty"),
])
def test_not_json_is_a_clear_error(write_trace, raw: bytes, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        open_table(write_trace(raw=raw), cache=False)


def test_json_without_traceEvents_is_a_clear_error(write_trace) -> None:
    with pytest.raises(TraceError, match="no 'traceEvents'"):
        open_table(write_trace(schemaVersion=1), cache=False)


def test_wrong_field_type_names_the_event(write_trace) -> None:
    with pytest.raises(TraceError, match=r"traceEvents\[1\]\.dur"):
        open_table(write_trace([kernel("k", 0, 1), {"ph": "X", "name": "k", "ts": 1, "dur": "long"}]), cache=False)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        open_table(tmp_path / "nope.json.gz")


def test_empty_trace_gives_zeros(write_trace) -> None:
    t = open_table(write_trace([]), cache=False)
    s = t.meta["summary"]
    assert s["events"] == 0 and s["kernels"] == {"count": 0, "total_us": 0} and s["top_kernels"] == []
    assert s["gpu_busy_us"] == 0 and s["gpu_span_us"] == 0 and s["gpu_idle_share"] == 0


def test_missing_and_negative_durations_are_counted_without_time(write_trace) -> None:
    events = [kernel("a", 0, 10), kernel("a", 20, -5), {"ph": "X", "cat": "kernel", "name": "a", "pid": 0, "tid": 7,
                                                        "ts": 40, "args": {"device": 0}}]
    s = open_table(write_trace(events), cache=False).meta["summary"]
    assert s["kernels"] == {"count": 3, "total_us": 10}
    assert s["gpu_busy_us"] == 10 and s["gpu_span_us"] == 10
    assert any("no duration" in w for w in s["warnings"]) and any("negative" in w for w in s["warnings"])
    from workbench.profiles.analysis import hta_breakdown

    t = open_table(write_trace(events + [kernel("a", 30, 5)]), cache=False)
    b = hta_breakdown(t.events, t.meta)
    assert b["temporal"]["kernel_span_us"] == 35 and b["temporal"]["idle_us"] == 20 and "negative" in b["note"]


def test_unknown_categories_are_kept_and_ignored_by_gpu_sums(write_trace) -> None:
    events = [kernel("a", 0, 10), {"ph": "X", "cat": "fpga_thing", "name": "b", "pid": 0, "tid": 1, "ts": 0, "dur": 99},
              {"ph": "Q", "name": "weird", "ts": 3}]
    t = open_table(write_trace(events), cache=False)
    assert "fpga_thing" in t.events["cat"].cat.categories
    assert t.meta["summary"]["gpu_busy_us"] == 10 and t.meta["summary"]["events"] == 3


def test_amd_trace_reads_with_the_same_categories(write_trace) -> None:
    """ROCm's Kineto writes the same categories (kernel, gpu_memcpy) with hip* runtime calls."""
    events = [kernel("Cijk_Ailk_Bljk_SB_MT64x64", 0, 30, corr=5), kernel("Cijk_Ailk_Bljk_SB_MT64x64", 50, 30, corr=6),
              cpu("hipLaunchKernel", -10, 2, cat="cuda_runtime", corr=5), cpu("hipLaunchKernel", 40, 2, cat="cuda_runtime", corr=6)]
    path = write_trace(events, deviceProperties=[{"id": 0, "name": "AMD Instinct MI250X"}])
    t = open_table(path, cache=False)
    assert t.meta["vendor"] == "amd"
    s = t.meta["summary"]
    assert s["kernels"]["count"] == 2 and s["gpu_busy_us"] == 60 and s["gpu_span_us"] == 80
    assert any("AMD" in w for w in s["warnings"])


def test_errors_are_workbench_errors() -> None:
    assert issubclass(TraceError, WorkbenchError)
