"""`workbench slices request|list|renew|release` through the CLI, against the real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert lease["id"] in out and "active" in out  # ids are never cut, even at 80 columns
    for _ in range(2):  # idempotent
        code, out = _run("slices", "release", lease["id"], "--json")
        assert code == 0 and json.loads(out)["state"] == "released"
    code, out = _run("slices", "release", lease["id"])
    assert code == 0 and lease["id"] in out and "environment" not in out and "CUDA_VISIBLE_DEVICES" not in out
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


def _workbench(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=60, env=env)


def test_user_text_is_printed_literally_in_one_line(tmp_path: Path) -> None:
    """The contract of issue 19: markup, emoji codes and huge or lenient specs give one literal line."""
    out = _workbench("slices", "request", "--no-wait", "--", "[/]", home=tmp_path)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "[/]" in out.stderr and out.stderr.startswith("error:"), out.stderr


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("[bold red]x[/bold red]", "'[bold red]x[/bold red]'"),
        ("root:x:0:0", "'root:x:0:0'"),
        ("cpu:0_5", "ASCII digits"),
        ("cpu:\uff12", "ASCII digits"),
        ("cpu:0.0000001", "at least 0.1"),
        ("x" * 100_000, "too long"),
        ("-1", "more than 0"),
    ],
)
def test_bad_specs_are_refused_in_one_short_literal_line(cli_env: Path, capsys: pytest.CaptureFixture[str], spec: str, words: str) -> None:
    from workbench.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["slices", "request", "--no-wait", "--", spec])
    err = capsys.readouterr().err
    assert stop.value.code == 1 and err.count("\n") == 1 and len(err) < 400 and words in err, err
    assert "❌" not in err


def test_option_like_arguments_are_explained(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["slices", "request", "-1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert "no such option '-1'" in err and "workbench slices request -- -1" in err, err
    with pytest.raises(SystemExit) as stop:
        main(["slices", "request", "--priority", "high", "cpu"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--priority" in err and "--help" in err, err


def test_help_shows_no_bool_metavar_on_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    for args in (["--help"], ["slices", "request", "--help"], ["jobs", "run", "--help"]):
        main(args)  # help exits 0: main returns
        out = capsys.readouterr().out
        assert "--help" in out and "<bool>" not in out, out
