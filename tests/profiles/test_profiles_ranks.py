"""Many ranks: `wb.profiles.load_ranks` on the workbench's real Dask cluster (CPU slice workers),
the `profiles ranks --json` contract, and how a rank is named."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from profiles_helpers import TRACES, cpu, kernel

from workbench.errors import InvalidRequest
from workbench.profiles.analysis import stragglers
from workbench.profiles.ranks import analyse, rank_of
from workbench.profiles.table import open_table

ROOT = Path(__file__).resolve().parents[2]


def test_cli_ranks_contract_against_summaries_and_the_straggler_analysis(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("sampled_rank0.json.gz", "sampled_rank1.json.gz"):
        shutil.copy(TRACES / name, folder / name)
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "workbench", "profiles", "ranks", str(folder), "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert set(got) == {"ranks", "straggler"}
    assert [set(r) for r in got["ranks"]] == [{"rank", "path", "events", "gpu_busy_us", "gpu_idle_share"}] * 2
    assert [r["rank"] for r in got["ranks"]] == [0, 1]
    frames = {}
    for r in got["ranks"]:
        t = open_table(r["path"], cache=False)
        s = t.meta["summary"]
        assert (r["events"], r["gpu_busy_us"], r["gpu_idle_share"]) == (s["events"], s["gpu_busy_us"], s["gpu_idle_share"])
        assert r["events"] == len(json.loads(gzip.decompress(Path(r["path"]).read_bytes()))["traceEvents"])
        frames[r["rank"]] = t.events
    ref = stragglers(frames).set_index("rank")
    worst = int(ref["late_arrivals"].idxmax())
    assert got["straggler"] == {"rank": worst, "wait_us": pytest.approx(ref.loc[worst, "wait_caused_us"])}
    assert got["straggler"]["wait_us"] > 0
    assert "distributed.scheduler - ERROR" not in out.stderr


def test_load_ranks_in_process_names_ranks_by_file_and_finds_no_straggler_without_comm(wb, tmp_path: Path) -> None:
    folder = tmp_path / "cpu"
    folder.mkdir()
    for rank in (2, 0, 1):  # no distributedInfo: the rank comes from the name
        events = [cpu("step", 0, 100 + rank), cpu("mm", 10, 50)]
        (folder / f"host_rank-{rank}.json").write_text(json.dumps({"traceEvents": events}))
    r = wb.profiles.load_ranks(folder, parallel=2)
    assert r.table["rank"].tolist() == [0, 1, 2]
    assert r.straggler is None and r.as_json()["straggler"] is None
    # in process, the peak is this test process's own (the whole test session's), so only its presence is checked
    assert (r.table["peak_rss_bytes"] > 0).all()
    assert r.profile(2).summary()["events"] == 2
    assert "no straggler" in r._repr_html_()
    assert not wb.jobs.backend.workers(), "the slice workers end with the call"
    assert all(lease.state != "active" for lease in wb.slices.list()), "the slices are released"


def test_bad_trace_among_ranks_is_our_error(wb, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "rank0.json").write_text(json.dumps({"traceEvents": [kernel("k", 0, 1)]}))
    (folder / "rank1.json").write_text('{"traceEvents": [{"ph": "X", "dur": "x"}]}')
    with pytest.raises(InvalidRequest, match=r"traceEvents\[0\]\.dur"):
        wb.profiles.load_ranks(folder)


def _digest(path: str, rank: int | None) -> dict:
    return {"path": path, "distributed_rank": rank, "events": 1, "gpu_busy_us": 0, "gpu_idle_share": 0,
            "temporal": {}, "comm": {"name": [], "start_us": [], "dur_us": []}, "peak_rss_bytes": 0}


def test_rank_naming_rules() -> None:
    assert rank_of(Path("x_rank7.json"), 3) == 3  # distributedInfo wins
    assert [rank_of(Path(n), None) for n in ("a_rank-12.json.gz", "RANK_4.json", "rank5.json", "worker.json")] == [12, 4, 5, None]
    with pytest.raises(InvalidRequest, match="two traces claim rank 1"):
        analyse([_digest("a_rank1.json", None), _digest("b.json", 1)])
    with pytest.raises(InvalidRequest, match="cannot tell the rank of 'worker.json'"):
        analyse([_digest("worker.json", None)])
    with pytest.raises(InvalidRequest, match="holds no trace files"):
        from workbench.profiles.ranks import trace_files

        trace_files(ROOT / "docs")
