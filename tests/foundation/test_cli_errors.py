"""Errors about files say what was expected, never what the file holds (the path may name any
readable file, such as /etc/shadow)."""

from __future__ import annotations

from pathlib import Path

import pytest

SECRET = "root:*:20228:0:99999:7:::\nbin:x:1:1:bin:/bin:/usr/sbin/nologin\n"


@pytest.mark.parametrize("suffix", ["", ".csv", ".toml", ".json"])
def test_errors_about_files_do_not_quote_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    secret = tmp_path / f"shadow{suffix}"
    secret.write_text(SECRET)
    for args in (["devices", "--fleet", str(secret)], ["slices", "replay", "--nodes", str(secret), "--pods", str(secret)],
                 ["profiles", "summary", str(secret)]):
        with pytest.raises(SystemExit) as stop:
            main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 1 and err.startswith("error:") and err.count("\n") == 1, (args, err)
        assert "20228" not in err and "root:" not in err and "nologin" not in err, (args, err)


def test_tables_round_floats_drop_empty_columns_and_keep_ids(capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli._common import plural, table

    table("jobs", ["id", "name", "energy_j", "power_w"],
          [["job-f1234567890abcdef", "a-rather-long-job-name-" * 3, 31.499999999999996, float("nan")],
           ["job-0000000000000000", "b", 9.497e-05, None]])
    out = capsys.readouterr().out
    assert "job-f1234567890abcdef" in out and "job-0000000000000000" in out
    assert "31.5" in out and "31.49999" not in out and "9.497e-05" in out
    assert "power_w" not in out and "nan" not in out
    assert plural(1, "node") == "1 node" and plural(2, "node") == "2 nodes" and plural(1, "lane") == "1 lane"
