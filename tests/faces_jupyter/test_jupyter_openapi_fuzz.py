"""Property-based run of the OpenAPI document against a real server: no 5xx, ever."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_server import LabServer, start_lab

from workbench.jupyter.handlers import OPENAPI_PATH


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    lab = start_lab(tmp_path_factory.mktemp("fuzzlab"), app="jupyter_server")
    (lab.root / "hello.py").write_text("print('hello')\n")
    yield lab
    lab.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server: LabServer, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [
            exe, "run", str(OPENAPI_PATH), "--url", server.api.rstrip("/"),
            "-H", f"Authorization: token {server.token}",
            "--checks", "not_a_server_error", "--max-examples", "15", "--max-time", "30",
            "--phases", "examples,coverage,fuzzing", "--seed", "1", "--no-color",
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "20 selected" in result.stdout, result.stdout[-3000:]
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:4000]
