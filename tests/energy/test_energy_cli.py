"""`workbench energy ...` through the real CLI entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_signal_json_and_day(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "energy", "signal", "CISO", "--json", "--day", "2022-01-05")
    info = json.loads(out)
    assert code == 0 and info["zone"] == "CISO" and info["interpolated_hours"] == 3 and len(info["hours"]) == 24
    assert [h["interpolated"] for h in info["hours"]].count(True) == 1  # 10:00 is an empty row in the file


def test_signal_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "energy", "signal", "ATLANTIS")
    assert code == 1 and "valid: CISO" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,avg_CI\n2022-01-01 01:00+00:00,100\n2022-01-01 00:00+00:00,100\n")
    code, _, err = run(capsys, "energy", "signal", str(bad))
    assert code == 1 and "goes back before line 2" in err
    code, out, _ = run(capsys, "energy", "signal", str(bad), "--repair", "--json")
    assert code == 0 and json.loads(out)["issues"]


def test_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "energy", "plan", "--duration", "2h", "--deadline", "20h", "--now", "2022-07-10T03:00", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["deferred_s"] > 0 and plan["fallback"] is None
    code, _, err = run(capsys, "energy", "plan", "--duration", "3h", "--deadline", "1h")
    assert code == 1 and "shorter than the job" in err


def test_summary_empty_and_measure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "energy", "summary", "--since", "7d", "--json")
    assert code == 0 and json.loads(out)["rows"] == []
    code, out, _ = run(capsys, "energy", "measure", "--json", "--", sys.executable, "-c", "pass")
    reading = json.loads(out)
    assert code == 0 and reading["exit_code"] == 0 and reading["energy_j"] >= 0 and "carbon_g" in reading
