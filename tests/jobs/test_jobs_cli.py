"""`workbench jobs ...` as a user (and the acceptance checks) run it: separate processes, one data directory."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import EXAMPLES, ROOT, wait_until


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="module")
def finished(home: Path) -> dict[str, Any]:
    """The contract: `jobs run PATH --slice cpu --wait --json` blocks and prints one JSON object."""
    result = _cli(home, "jobs", "run", str(EXAMPLES / "jax_mlp_digits.py"), "--framework", "jax", "--slice", "cpu",
                  "--wait", "--json", "-p", "epochs=8")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_wait_json_prints_the_finished_job(finished: dict[str, Any]) -> None:
    assert finished.keys() >= {"id", "state", "error", "log_path"}
    assert finished["state"] == "succeeded" and finished["error"] is None
    assert finished["params"] == {"epochs": 8}
    assert Path(finished["log_path"]).is_file()


def test_logs_list_show_metrics(home: Path, finished: dict[str, Any]) -> None:
    logs = _cli(home, "jobs", "logs", finished["id"])
    assert logs.returncode == 0 and "test accuracy" in logs.stdout
    assert logs.stdout == Path(finished["log_path"]).read_text()
    listed = json.loads(_cli(home, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in listed] == [finished["id"]]
    shown = json.loads(_cli(home, "jobs", "show", finished["id"], "--json").stdout)
    assert [e["state"] for e in shown["events"]] == ["queued", "allocating", "running", "succeeded"]
    rows = json.loads(_cli(home, "jobs", "metrics", finished["id"], "--json").stdout)
    assert rows[-1]["test_accuracy"] > 0.9


def test_errors_are_one_line_and_exit_1(home: Path) -> None:
    missing = _cli(home, "jobs", "run", "no/such/script.py", "--wait", "--json")
    assert missing.returncode == 1
    assert "error: script 'no/such/script.py' does not exist" in missing.stderr
    framework = _cli(home, "jobs", "run", str(EXAMPLES / "jax_mlp_digits.py"), "--framework", "mxnet")
    assert framework.returncode == 1 and "framework 'mxnet' is not supported" in framework.stderr
    unknown = _cli(home, "jobs", "logs", "job-000000000000")
    assert unknown.returncode == 1 and "job job-000000000000 does not exist" in unknown.stderr


def test_a_failed_job_exits_3_with_its_error(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("print('before')\nraise KeyError('missing-key')\n")
    result = _cli(home, "jobs", "run", str(script), "--wait", "--json")
    assert result.returncode == 3
    job = json.loads(result.stdout)
    assert job["state"] == "failed" and "KeyError: 'missing-key'" in job["error"]
    assert "Traceback" in Path(job["log_path"]).read_text()


def test_run_without_wait_is_detached_and_can_be_cancelled(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "forever.py"
    script.write_text(textwrap.dedent("""
        import time, workbench
        i = 0
        while True:
            workbench.log(step=i, loss=1.0 / (i + 1))
            print("step", i, flush=True)
            i += 1
            time.sleep(0.05)
    """))
    result = _cli(home, "jobs", "run", str(script), "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    job_id = json.loads(result.stdout)["id"]  # returned at once, the job still going
    wait_until(lambda: "step 3" in _cli(home, "jobs", "logs", job_id).stdout, 90, "the detached job's log")
    cancelled = _cli(home, "jobs", "cancel", job_id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    followed = _cli(home, "jobs", "logs", job_id, "-f", timeout=30)  # returns: the job has ended
    assert "step 3" in followed.stdout


@pytest.mark.parametrize("wait", [["--wait"], []])
def test_a_slice_the_fleet_can_never_grant_is_refused_at_submit(tmp_path: Path, wait: list[str]) -> None:
    fleet = tmp_path / "t4.toml"
    fleet.write_text('[[nodes]]\nname = "t4"\ngpus = 1\nmodel = "T4"\n')
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(tmp_path / "home"), WORKBENCH_FLEET=str(fleet))
    result = subprocess.run([sys.executable, "-m", "workbench", "jobs", "run", str(script), "--slice", "1g.10gb", *wait],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "1g.10gb is not a MIG profile of T4 (no MIG)" in result.stderr and "submitted" not in result.stdout + result.stderr
    listed = subprocess.run([sys.executable, "-m", "workbench", "jobs", "list", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(listed.stdout) == []


def test_run_wait_shows_the_wait_for_a_slice_and_list_reports_queued_time(tmp_path: Path) -> None:
    from workbench import Workbench

    home = tmp_path / "home"
    script = tmp_path / "hello.py"
    script.write_text("print('hello from the job')\n")
    holder = Workbench(home=home)
    cores = next(d.cores for d in holder.devices().devices if d.kind == "cpu")
    lease = holder.slices.request(f"cpu:{cores}")  # the whole machine: the job must wait
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_HOME"] = str(home)
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "jobs", "run", str(script), "--slice", "cpu:1", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        # While it waits, the job points at its queued lease (so the CLI can show its place in the queue).
        wait_until(lambda: any(j.state == "allocating" and j.lease_id for j in holder.jobs.list()), timeout_s=60,
                   what="the job to wait for its slice")
        time.sleep(1.5)
        lease.release()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        holder.close()
    assert proc.returncode == 0, err
    assert "hello from the job" in out and "in the queue" in err, err
    assert "#1 in the queue for slice cpu:1" in err, err  # its place in the slices queue, and why
    listed = subprocess.run([sys.executable, "-m", "workbench", "jobs", "list"], capture_output=True, text=True,
                            env={**env, "COLUMNS": "200"}, timeout=60)
    header = next(line for line in listed.stdout.splitlines() if "created (UTC)" in line)
    assert "queued" in header and "ran" in header, listed.stdout
    job = json.loads(_cli(home, "jobs", "list", "--json").stdout)[0]
    queued = (dt.datetime.fromisoformat(job["started_at"]) - dt.datetime.fromisoformat(job["created_at"])).total_seconds()
    assert queued >= 1.5
