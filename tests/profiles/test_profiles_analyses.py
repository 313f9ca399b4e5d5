"""The analyses, on synthetic traces with known answers and on the real traces."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from profiles_helpers import TRACES, cpu, kernel

from workbench.profiles import analysis
from workbench.profiles.profile import Profile
from workbench.profiles.table import open_table


def events_of(write_trace, events, **top) -> pd.DataFrame:
    return open_table(write_trace(events, **top), cache=False).events


def test_merge_intervals_joins_overlapping_and_touching() -> None:
    s, e = analysis.merge_intervals(np.array([5, 0, 2, 10, 12.0]), np.array([6, 3, 5, 11, 13.0]))
    assert s.tolist() == [0, 10, 12] and e.tolist() == [6, 11, 13]
    assert analysis.union_length(np.array([]), np.array([])) == 0


def test_summary_unions_per_device_and_falls_back_to_pid(write_trace) -> None:
    events = [kernel("a", 0, 10, device=0), kernel("b", 5, 10, device=0), kernel("a", 100, 10, device=1),
              {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "pid": 9, "tid": 1, "ts": 0, "dur": 4},
              {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "pid": 9, "tid": 1, "ts": 10, "dur": 4}]
    s = open_table(write_trace(events), cache=False).meta["summary"]
    # device 0: [0,15) busy 15 span 15; device 1: 10/10; pid 9: 8 busy of 14
    assert s["gpu_busy_us"] == 15 + 10 + 8 and s["gpu_span_us"] == 15 + 10 + 14
    assert s["gpu_idle_share"] == pytest.approx(1 - 33 / 39)
    assert s["top_kernels"][0] == {"name": "a", "count": 2, "total_us": 20}


def test_kernel_categories() -> None:
    assert analysis.kernel_category("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_256x64>") == "gemm"
    assert analysis.kernel_category("ampere_sgemm_128x64_tn") == "gemm"
    assert analysis.kernel_category("ncclKernel_AllReduce_RING_LL_Sum_float(ncclWorkElem)") == "communication"
    assert analysis.kernel_category("Memcpy DtoD (Device -> Device)", "gpu_memcpy") == "memory"
    assert analysis.kernel_category("void at::native::vectorized_elementwise_kernel<4, ...>") == "elementwise"
    assert analysis.kernel_category("void at::native::reduce_kernel<512, 1>") == "other"
    assert analysis.hta_kernel_type("ncclKernel_AllReduce") == "COMMUNICATION"
    assert analysis.hta_kernel_type("Memset (Device)") == "MEMORY"
    assert analysis.hta_kernel_type("cudaStreamSync") == "OTHER"
    assert analysis.hta_kernel_type("void foo_Memcpy_kernel") == "OTHER"
    assert analysis.hta_kernel_type("sgemm") == "COMPUTATION"


def test_kernel_breakdown_on_a_real_trace() -> None:
    p = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    b = p.kernel_breakdown().set_index("category")
    assert list(b.index) == list(analysis.KERNEL_CATEGORIES)
    assert b["total_us"].sum() == pytest.approx(p.kernels()["total_us"].sum())
    assert b.loc["communication", "total_us"] > 0 and b.loc["gemm", "total_us"] > 0


def test_idle_gaps_find_the_host_cause(write_trace) -> None:
    events = [
        cpu("aten::mm", 0, 10, corr=None), cpu("cudaLaunchKernel", 2, 1, cat="cuda_runtime", corr=1),
        kernel("gemm", 5, 20, corr=1),  # GPU busy [5, 25)
        cpu("aten::nonzero", 12, 88), cpu("cudaStreamSynchronize", 15, 20, cat="cuda_runtime"),
        cpu("slow_python_op", 40, 300), cpu("cudaLaunchKernel", 330, 2, cat="cuda_runtime", corr=2),
        kernel("relu", 335, 5, corr=2),  # gap [25, 335): sync overlapped it
        cpu("optimizer_step_python", 341, 600), cpu("cudaLaunchKernel", 345, 2, cat="cuda_runtime", corr=3),
        kernel("add", 1000, 5, corr=3),  # gap [340, 1000): launched at 345 > 340 -> host_wait
    ]
    gaps = Profile(id=None, name="t", path=Path("x"), _table=open_table(write_trace(events), cache=False)).idle(100)
    assert gaps["gap_us"].tolist() == [660, 310]
    first, second = gaps.iloc[0], gaps.iloc[1]
    assert first["cause"] == "host_wait" and first["next_kernel"] == "add" and first["launch_us"] == 345
    assert first["host_op"] == "optimizer_step_python"  # the host was busy with it during the gap
    assert second["cause"] == "sync" and second["sync_call"] == "cudaStreamSynchronize"
    assert second["host_op"] == "aten::nonzero"  # the operator that made the blocking call


def test_idle_gaps_on_real_traces_have_causes() -> None:
    p = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    gaps = p.idle(500)
    assert len(gaps) > 0 and gaps["gap_us"].min() >= 500
    assert set(gaps["cause"]) <= {"host_wait", "sync", "gpu_wait", "launch_not_traced"}
    assert gaps["host_op"].notna().mean() > 0.5
    per_stream = p.idle_by_stream()
    whole = per_stream[per_stream["stream"] == "all"].iloc[0]
    s = p.summary()
    assert whole["busy_us"] == pytest.approx(s["gpu_busy_us"]) and whole["span_us"] == pytest.approx(s["gpu_span_us"])


def test_launch_delay_uses_flows(write_trace) -> None:
    events = [cpu("cudaLaunchKernel", 100, 5, cat="cuda_runtime", corr=7), kernel("k", 130, 10, corr=7),
              {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": 7, "pid": 100, "tid": 1, "ts": 101},
              {"ph": "f", "cat": "ac2g", "name": "ac2g", "id": 7, "pid": 0, "tid": 7, "ts": 130, "bp": "e"},
              cpu("cudaLaunchKernel", 200, 5, cat="cuda_runtime", corr=8), kernel("k2", 260, 10, corr=8)]
    d = analysis.launch_delay(events_of(write_trace, events))
    assert d[["name", "delay_us"]].values.tolist() == [["k", 29.0], ["k2", 60.0]]
    no_flows = [e for e in events if e["ph"] == "X"]
    d2 = analysis.launch_delay(events_of(write_trace, no_flows))
    assert d2["delay_us"].tolist() == [30.0, 60.0] and set(d2["link"]) == {"correlation"}


def test_comm_compute_overlap(write_trace) -> None:
    events = [kernel("ncclKernel_AllReduce", 0, 100, stream=20), kernel("sgemm", 50, 100, stream=7),
              kernel("Memcpy DtoD", 0, 300, stream=9, cat="gpu_memcpy")]
    o = analysis.comm_compute_overlap(events_of(write_trace, events)).iloc[0]
    assert (o["comm_us"], o["compute_us"], o["overlap_us"]) == (100, 100, 50)
    assert o["comm_overlapped_share"] == 0.5 and o["comm_exposed_us"] == 50


def test_steps_on_synthetic_and_real(write_trace) -> None:
    events = [cpu("ProfilerStep#3", 0, 100, cat="user_annotation"), cpu("ProfilerStep#4", 100, 50, cat="user_annotation"),
              cpu("cudaLaunchKernel", 10, 1, cat="cuda_runtime", corr=1), kernel("a", 20, 30, corr=1),
              cpu("cudaLaunchKernel", 110, 1, cat="cuda_runtime", corr=2), kernel("b", 115, 10, corr=2),
              cpu("cudaLaunchKernel", 120, 1, cat="cuda_runtime", corr=3), kernel("c", 120, 10, corr=3)]
    st = analysis.steps(events_of(write_trace, events))
    assert st["step"].tolist() == [3, 4] and st["host_us"].tolist() == [100, 50]
    assert st["gpu_events"].tolist() == [1, 2] and st["gpu_busy_us"].tolist() == [30, 15]
    real = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False).steps()
    assert len(real) >= 2 and (real["gpu_events"] > 0).all() and real["step"].is_monotonic_increasing


def test_memory_timeline_from_memory_instants(write_trace) -> None:
    mem = [{"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "pid": 1, "tid": 1, "ts": t, "s": "t",
            "args": {"Device Type": 1, "Device Id": 0, "Bytes": b, "Total Allocated": tot, "Total Reserved": 4096, "Addr": 1}}
           for t, b, tot in ((10, 512, 512), (20, 1024, 1536), (30, -512, 1024))]
    m = analysis.memory_timeline(events_of(write_trace, mem + [kernel("k", 0, 5)]))
    assert m["total_allocated"].tolist() == [512, 1536, 1024] and m["bytes"].tolist() == [512, 1024, -512]
    assert (m["device"] == 0).all() and (m["total_reserved"] == 4096).all()


def test_stragglers_on_the_two_sampled_ranks() -> None:
    frames = {r: open_table(TRACES / f"sampled_rank{r}.json.gz", cache=False).events for r in (0, 1)}
    s = analysis.stragglers(frames).set_index("rank")
    assert set(s.index) == {0, 1}
    assert s["late_arrivals"].sum() > 0 and s["straggler"].sum() >= 1
    # the straggler arrives last, so it waits least inside collectives
    straggler = s["late_arrivals"].idxmax()
    other = 1 - straggler
    assert s.loc[straggler, "comm_us"] < s.loc[other, "comm_us"]


def test_compare_the_tiny_pair_exactly() -> None:
    a = open_table(TRACES / "compare_base.json.gz", cache=False).events
    b = open_table(TRACES / "compare_test.json.gz", cache=False).events
    c = analysis.compare(a, b, min_delta_us=0).set_index(["kind", "name"])
    assert c.loc[("operator", "All2All_Pooled_Req"), "status"] == "new"
    assert c.loc[("operator", "All2All_Pooled_Req"), "total_us_b"] == 311
    assert c.loc[("operator", "AddmmBackward0"), "status"] == "new"
    def kernels_of(name: str) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for e in json.loads(gzip.decompress((TRACES / name).read_bytes()))["traceEvents"]:
            if e["cat"] == "kernel":
                out.setdefault(e["name"], []).append(e["dur"])
        return out

    ka, kb = kernels_of("compare_base.json.gz"), kernels_of("compare_test.json.gz")
    changed = [n for n in ka if len(ka[n]) != len(kb.get(n, []))]
    assert changed
    for n in changed:
        row = c.loc[("kernel", n)]
        assert (row["count_a"], row["count_b"]) == (len(ka[n]), len(kb.get(n, [])))
        assert row["delta_us"] == sum(kb.get(n, [])) - sum(ka[n])
        assert row["status"] == ("vanished" if n not in kb else "faster")
    assert c.loc[("operator", "aten::zeros"), "status"] == "same"


def test_compare_a100_with_v100() -> None:
    a = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    b = Profile.open(TRACES / "diff_test_v100.json.gz", cache=False)
    c = a.compare(b)
    assert {"slower", "faster", "new", "vanished"} <= set(c["status"])
    assert c["delta_us"].abs().is_monotonic_decreasing
    cats = a.compare(b, by="category").set_index("name")
    # the V100 run spends more time in GEMMs than the A100 run
    assert cats.loc["gemm", "total_us_b"] > cats.loc["gemm", "total_us_a"]
    with pytest.raises(Exception, match="valid: 'name', 'category'"):
        a.compare(b, by="shape")


def test_timeline_level_of_detail_over_100k_events() -> None:
    p = Profile.open(TRACES / "train_a100_rank0.json.gz", cache=False)
    fig = p.timeline()
    tag = fig.tags[0]
    assert tag["events"] > 60_000 and tag["blocks"] < tag["events"] / 50
    small = Profile.open(TRACES / "alexnet_a100.json.gz", cache=False).timeline()
    assert small.tags[0]["events"] <= 4000  # drawn one by one


def test_export_slice_round_trips(tmp_path: Path) -> None:
    src = TRACES / "alexnet_a100.json.gz"
    events = json.loads(gzip.decompress(src.read_bytes()))["traceEvents"]
    ts = sorted(e["ts"] for e in events if e.get("ph") == "X")
    lo, hi = ts[len(ts) // 3], ts[2 * len(ts) // 3]
    p = Profile.open(src, cache=False)
    out = p.export(tmp_path / "slice.json.gz", lo, hi)
    sliced = open_table(out, cache=False)
    x = sliced.events[sliced.events["ph"] == "X"]
    assert len(x) > 0
    assert ((x["ts_us"] < hi) & (x["ts_us"] + x["dur_us"] >= lo)).all()
    assert (sliced.events["ph"] == "M").sum() == sum(1 for e in events if e.get("ph") == "M")
    expected = sum(1 for e in events if e.get("ph") == "X" and e["ts"] < hi and e["ts"] + e["dur"] >= lo)
    assert len(x) == expected


@pytest.mark.parametrize("what", ["kernels", "breakdown", "idle", "steps", "memory", "delay", "overlap"])
def test_plots_build(what: str) -> None:
    from bokeh.embed import json_item

    p = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    json_item(p.plot(what))


def test_jax_device_lanes_count_as_gpu_work_but_not_in_the_summary_contract(write_trace) -> None:
    """XLA traces put GPU work in a "/device:GPU:N" process with no category."""
    events = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 7, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "X", "pid": 1, "tid": 5, "ts": 0, "dur": 100, "name": "$train.py:10 step"},
        {"ph": "X", "pid": 7, "tid": 13, "ts": 10, "dur": 20, "name": "fusion_1"},
        {"ph": "X", "pid": 7, "tid": 13, "ts": 300, "dur": 20, "name": "gemm_fusion"},
        {"ph": "X", "pid": 7, "tid": 14, "ts": 15, "dur": 5, "name": "MemcpyD2H"},
    ]
    t = open_table(write_trace(events, displayTimeUnit="ns"), cache=False)
    assert t.meta["format"] == "jax"
    assert t.meta["summary"]["gpu_busy_us"] == 0 and t.meta["summary"]["kernels"]["count"] == 0  # the contract: cat-based
    p = Profile(id=None, name="jax", path=Path("x"), _table=t)
    k = p.kernels().set_index("name")
    assert set(k.index) == {"fusion_1", "gemm_fusion", "MemcpyD2H"}
    assert k.loc["gemm_fusion", "category"] == "gemm" and k.loc["MemcpyD2H", "category"] == "memory"
    gaps = p.idle(100)
    assert gaps["gap_us"].tolist() == [270] and gaps.iloc[0]["device"] == 0
    assert p.breakdown()["gpu_kernels"] == 0  # HTA drops uncategorized events; so do we
    assert p.timeline().tags[0]["lanes"] == 3
