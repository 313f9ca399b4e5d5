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
