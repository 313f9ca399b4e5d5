"""`wb.profiles`: register, find, analyse by id; capture torch and jax on CPU; the CLI's list/show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from profiles_helpers import TRACES

from workbench.errors import NotFound
from workbench.profiles.capture import capture_trace
from workbench.profiles.profile import Profile
from workbench.profiles.table import open_table


def test_load_register_get_list(wb, trace_copy) -> None:
    path = trace_copy("alexnet_a100.json.gz")
    p = wb.profiles.load(path, job_id="job-1")
    assert p.id.startswith("prof-") and p.owner == wb.user and p.job_id == "job-1"
    assert p.device == "NVIDIA A100-PG509-200" and p.framework == "torch" and p.format == "kineto"
    q = wb.profiles.register(trace_copy("compare_base.json.gz"), name="base", owner="alice")
    got = wb.profiles.get(p.id)
    assert got.path == path.resolve() and got.summary() == p.summary()
    assert {x.id for x in wb.profiles.list()} == {p.id, q.id}
    assert [x.id for x in wb.profiles.list(owner="alice")] == [q.id]
    assert [x.id for x in wb.profiles.list(job_id="job-1")] == [p.id]
    assert wb.profiles.summary(p.id) == wb.profiles.summary(path)
    assert wb.profiles.breakdown(p.id)["temporal"]["idle_pct"] == pytest.approx(99.49, abs=0.01)
    c = wb.profiles.compare(q.id, trace_copy("compare_test.json.gz"))
    assert "new" in set(c["status"])
    assert "Profile" in got._repr_html_() and p.id in repr(got)


def test_unknown_ids_and_broken_traces_are_refused(wb, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="prof-nope"):
        wb.profiles.get("prof-nope")
    with pytest.raises(NotFound, match="neither a trace file nor a profile id"):
        wb.profiles.summary(str(tmp_path / "missing.json.gz"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(Exception, match="no 'traceEvents'"):
        wb.profiles.register(bad)
    assert wb.profiles.list() == []


def test_stragglers_through_the_service(wb, trace_copy) -> None:
    s = wb.profiles.stragglers([trace_copy("sampled_rank0.json.gz"), trace_copy("sampled_rank1.json.gz")])
    assert list(s["rank"]) == [0, 1] and s["straggler"].sum() >= 1


def test_capture_torch_on_cpu_registers_the_profile(wb) -> None:
    torch = pytest.importorskip("torch")
    with wb.profile("torch", name="tiny", profile_memory=True) as p:
        model = torch.nn.Linear(32, 8)
        for _ in range(3):
            model(torch.randn(16, 32)).sum().backward()
            p.step()
    assert p.path.exists() and p.profile.id and p.profile.framework == "torch"
    assert wb.profiles.get(p.profile.id).name == "tiny"
    steps = p.steps()
    assert list(steps["step"][:3]) == [0, 1, 2] and (steps["host_us"] > 0).all()
    assert p.summary()["cpu_ops"]["count"] > 0
    assert len(p.memory()) > 0 and (p.memory()["total_allocated"] >= 0).all()


def test_capture_keeps_the_profilers_lines_out_of_the_output(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    with capture_trace("torch", tmp_path) as cap:
        print("the user's line", flush=True)
        torch.ones(4) @ torch.ones(4)
    out, err = capfd.readouterr()
    assert out == "the user's line\n" and "profiler_" not in err, (out, err)
    assert cap.path is not None and cap.path.exists()
    assert "profiler_start" in (tmp_path / "profiler.log").read_text()


def test_capture_jax_without_a_database(tmp_path: Path) -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    with capture_trace("jax", tmp_path) as cap:
        f = jax.jit(lambda a: jnp.tanh(a @ a).sum())
        f(jnp.ones((64, 64))).block_until_ready()
    assert cap.path.name.endswith(".trace.json.gz")
    t = open_table(cap.path, cache=False)
    assert t.meta["format"] == "jax" and t.meta["summary"]["events"] > 0
    assert (t.events["ph"] == "X").sum() > 0


def test_capture_refuses_unknown_frameworks(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="valid: torch, jax"), capture_trace("tensorflow", tmp_path):
        pass


def test_cli_list_show_compare(tmp_path: Path, trace_copy) -> None:
    env_home = tmp_path / "home"
    import os

    env = {**os.environ, "WORKBENCH_HOME": str(env_home)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "workbench", "profiles", *args], capture_output=True, text=True,
                              env=env, timeout=120, check=False)

    loaded = cli("load", str(trace_copy("compare_base.json.gz")), "--json")
    assert loaded.returncode == 0, loaded.stderr
    pid = json.loads(loaded.stdout)["id"]
    listed = json.loads(cli("list", "--json").stdout)
    assert [x["id"] for x in listed] == [pid]
    shown = json.loads(cli("show", pid, "--json").stdout)
    assert shown["summary"]["events"] == 33
    cmp = cli("compare", pid, str(trace_copy("compare_test.json.gz")), "--json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)
    assert any(r["name"] == "All2All_Pooled_Req" and r["status"] == "new" for r in rows)
    assert cli("show", "prof-missing").returncode == 1
    human = cli("summary", str(trace_copy("compare_test.json.gz")))
    assert human.returncode == 0 and "Top kernels" in human.stdout


def test_profile_open_without_store() -> None:
    p = Profile.open(TRACES / "triton_launch_a100.json.gz", cache=False)
    assert p.id is None and p.summary()["kernels"]["count"] == 1
