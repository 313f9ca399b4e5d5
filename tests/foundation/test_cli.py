"""The `workbench` command as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKBENCH = [sys.executable, "-m", "workbench"]


def run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def test_devices_json_lists_the_cpu_here() -> None:
    out = run("devices", "--json")
    assert out.returncode == 0, out.stderr
    devices = json.loads(out.stdout)
    cpu = [d for d in devices if d["kind"] == "cpu"]
    assert len(cpu) == 1
    for field in ("node", "index", "kind", "model", "memory_bytes", "mig"):
        assert field in cpu[0]


def test_devices_on_the_alibaba_fleet() -> None:
    out = run("devices", "--fleet", "data/cluster/openb_node_list_gpu_node.csv", "--json")
    devices = json.loads(out.stdout)
    assert len(devices) == 6212 and all(d["kind"] == "gpu" for d in devices)
    assert len({d["node"] for d in devices}) == 1213


def test_devices_table_for_people() -> None:
    out = run("devices", "--fleet", "data/fleets/h100_2x8.toml")
    assert out.returncode == 0 and "H100-80GB" in out.stdout and "2 nodes, 16 GPUs" in out.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "nodes.csv"
    bad.write_text("sn,gpu\nx,1\n")
    out = run("devices", "--fleet", str(bad))
    assert out.returncode == 1
    assert "missing column(s) cpu_milli, memory_mib, model" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = run("--debug", "devices", "--fleet", str(tmp_path / "missing.csv"))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_bad_setting_is_a_clear_error() -> None:
    out = run("devices", env_extra={"WORKBENCH_LEASE_TTL": "5"})
    assert out.returncode == 1 and "WORKBENCH_LEASE_TTL is not a workbench setting" in out.stderr


def test_version() -> None:
    from workbench import __version__

    assert run("version").stdout.strip() == __version__


def test_cli_start_imports_no_framework() -> None:
    code = (
        "import sys; from workbench.cli import main\n"
        "try:\n    main(['devices', '--json'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'jax', 'dask', 'distributed', 'pandas', 'triton') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY []" in out.stderr, out.stderr
    help_out = subprocess.run([*WORKBENCH, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert help_out.returncode == 0 and "devices" in help_out.stdout


def test_exit_codes_of_commands_are_kept() -> None:
    import typer

    from workbench.cli import app, main

    @app.command("_exit-three", hidden=True)
    def _exit_three() -> None:
        raise typer.Exit(3)

    try:
        main(["_exit-three"])
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("exit code 3 was swallowed")
