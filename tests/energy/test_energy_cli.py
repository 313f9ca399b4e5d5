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


def test_energy_is_shown_in_watt_hours_in_every_face(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One unit for energy (Wh, three significant digits) in the CLI's tables and the notebook's card."""
    import datetime as dt

    from workbench import Workbench
    from workbench.store.models.base import new_id
    from workbench.store.models.jobs import JobRow
    from workbench.units import format_energy_j, format_significant

    monkeypatch.setenv("COLUMNS", "250")
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    job_id = new_id("job")
    with Workbench() as wb:
        with wb.store.session() as s:
            s.add(JobRow(id=job_id, name="tiny", owner=wb.user, project="p", kind="callable", target="m:f",
                         state="succeeded", energy_j=0.34189, carbon_g=3.3622e-05, energy_estimated=True,
                         started_at=ended - dt.timedelta(seconds=5), ended_at=ended))
        card = wb.jobs.get(job_id)._repr_html_()
    assert "0.0000950 Wh (estimated)" in card and " J" not in card
    shown = []
    for args in (["energy", "summary", "--since", "1d"], ["jobs", "list"], ["jobs", "show", job_id]):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        shown.append(out)
    assert "0.0000950 Wh" in shown[0] and "0.0000336 g" in shown[0]
    assert all("0.0000950 Wh" in out for out in shown), shown
    assert not any("kWh" in out or "e-0" in out or "energy_j" in out for out in shown), shown
    assert format_energy_j(31.499999999999996 * 3600) == "31.5 Wh" and format_energy_j(0.99999 * 3600) == "1.00 Wh"
    assert format_significant(1234567.0) == "1,230,000" and format_significant(0.0) == "0"
