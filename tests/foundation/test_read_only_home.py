"""A read-only data folder: reading commands work, writing commands say why in one line.

We run as root, which ignores file permissions, so the folder is made read-only the way an
administrator would share it: a read-only bind mount, here inside a private mount namespace
(`unshare -m`) so that nothing outside the test sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "data" / "traces" / "cpu_only.json.gz"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "WORKBENCH_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], env=_env(home), capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def _read_only(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`workbench ARGS` with `home` mounted read-only (for this process only)."""
    command = " ".join(["exec", sys.executable, "-m", "workbench", *(f"'{a}'" for a in args)])
    script = f"mount --bind '{home}' '{home}' && mount -o remount,bind,ro '{home}' && {command}"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env=_env(home),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def read_only_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with a lease, a finished job and a profile, written by the normal CLI."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here to make a read-only mount")
    probe = tmp_path_factory.mktemp("probe")
    tried = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount --bind '{probe}' '{probe}' && mount -o remount,bind,ro '{probe}' && ! touch '{probe}/x'"],
                           capture_output=True, text=True, timeout=30)
    if tried.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here (unshare refused: {tried.stderr.strip()[:200]})")
    home = tmp_path_factory.mktemp("home")
    script = home.parent / "hello.py"
    script.write_text("print('hello')\n")
    for args in (["slices", "request", "cpu:1", "--json"], ["jobs", "run", str(script), "--wait", "--json"],
                 ["profiles", "load", str(TRACE)]):
        done = _cli(home, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        if args[0] == "slices":
            (home / "lease-id").write_text(json.loads(done.stdout)["id"])
    return home


def test_reading_commands_work_on_a_read_only_data_folder(read_only_home: Path) -> None:
    slices = _read_only(read_only_home, "slices", "list", "--json")
    assert slices.returncode == 0, slices.stderr
    [lease] = json.loads(slices.stdout)
    assert lease["id"] == (read_only_home / "lease-id").read_text() and lease["state"] == "active"
    jobs = _read_only(read_only_home, "jobs", "list", "--json")
    assert jobs.returncode == 0, jobs.stderr
    [job] = json.loads(jobs.stdout)
    assert job["state"] == "succeeded"
    profiles = _read_only(read_only_home, "profiles", "list", "--json")
    assert profiles.returncode == 0, profiles.stderr
    [profile] = json.loads(profiles.stdout)
    shown = _read_only(read_only_home, "profiles", "show", profile["id"])
    assert shown.returncode == 0 and profile["id"] in shown.stdout, shown.stderr


@pytest.mark.parametrize("args", [["slices", "request", "cpu:1"], ["jobs", "run", "{script}"],
                                  ["jobs", "run", "{script}", "--wait"]])
def test_writing_commands_name_the_folder_and_the_permission(read_only_home: Path, args: list[str]) -> None:
    args = [a.format(script=read_only_home.parent / "hello.py") for a in args]
    done = _read_only(read_only_home, *args)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error:"), done.stderr
    assert str(read_only_home) in done.stderr and "not writable" in done.stderr, done.stderr
    assert "Read-only file system" in done.stderr or "readonly" in done.stderr, done.stderr
    assert "unexpected" not in done.stderr and "migrate.lock" not in done.stderr
