"""`workbench slices request|list|renew|release` through the CLI, against the real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli_env(tmp_path: Path, mixed_fleet: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("WORKBENCH_FLEET", str(mixed_fleet))
    monkeypatch.setenv("WORKBENCH_USER", "cli-user")
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    from workbench.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_request_list_renew_release(cli_env: Path) -> None:
    code, out = _run("slices", "request", "0.5", "--model", "A100-80GB", "--json")
    assert code == 0, out
    lease = json.loads(out)
    assert lease["kind"] == "fraction" and lease["owner"] == "cli-user" and lease["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.500"
    code, out = _run("slices", "list", "--json")
    assert [x["id"] for x in json.loads(out)] == [lease["id"]]
    code, out = _run("slices", "renew", lease["id"], "--json")
    assert code == 0 and json.loads(out)["state"] == "active"
    code, out = _run("slices", "list")
    assert lease["id"][:9] in out and "active" in out
    for _ in range(2):  # idempotent
        code, out = _run("slices", "release", lease["id"], "--json")
        assert code == 0 and json.loads(out)["state"] == "released"
    assert json.loads(_run("slices", "list", "--json")[1]) == []
    assert len(json.loads(_run("slices", "list", "--ended", "--json")[1])) == 1
    code, out = _run("slices", "sweep", "--json")
    assert code == 0 and json.loads(out) == {"expired": 0, "idle": 0, "granted": 0}


def test_cli_errors_are_one_line(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    for args, words in (
        (["slices", "request", "1.5"], "at most 1"),
        (["slices", "request", "gpu", "--model", "T4"], None),
        (["slices", "request", "gpu", "--model", "T4", "--no-wait"], "cannot be granted now: busy"),
        (["slices", "release", "lease-000000000000"], "no lease"),
    ):
        if words is None:
            main(args)  # succeeds: the only T4 is now held
            continue
        with pytest.raises(SystemExit) as stop:
            main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 1 and words in err and err.startswith("error:"), err


def test_plan_mig_json_reports_an_impossible_gpu_as_json() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "workbench", "slices", "plan-mig", "--gpu", "Tesla T4", "1g.10gb", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["feasible"] is False and "no MIG" in result["reason"]


def test_request_pinned_with_host_memory_and_a_memory_quota(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_QUOTAS", '{"user:*": {"memory_gib": 24}}')
    code, out = _run("slices", "request", "gpu", "--node", "a100-1", "--cpus", "4", "--memory", "16GiB", "--json")
    assert code == 0, out
    lease = json.loads(out)
    assert lease["node"] == "a100-1" and lease["cpu_milli"] == 4000
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["slices", "request", "cpu", "--memory", "16GiB", "--no-wait"])
    assert stop.value.code == 1 and "holds 16 of 24 GiB of host memory; this request needs 16 more" in capsys.readouterr().err
