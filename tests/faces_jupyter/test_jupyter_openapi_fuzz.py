"""Property-based run of the OpenAPI document against a real server: no 5xx, ever.

The path parameters are seeded with real ids (a live slice, a finished job, a stored profile) beside
the random ones the pattern allows, so the fuzzer reaches the handlers' code past "not found".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_server import LabServer, start_lab

from workbench.jupyter.openapi import OPENAPI_PATH

MIN_CASES = 500


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    lab = start_lab(tmp_path_factory.mktemp("fuzzlab"), app="jupyter_server")
    (lab.root / "hello.py").write_text("print('hello')\n")
    yield lab
    lab.stop()


def _real_ids(lab: LabServer) -> dict[str, list[str]]:
    headers = {"Authorization": f"token {lab.token}"}
    with httpx.Client(base_url=lab.api, headers=headers, timeout=60) as client:
        lease = client.post("slices", json={"spec": "cpu:0.5"}).json()
        job = client.post("jobs", json={"target": "hello.py", "slice": "cpu:0.5"}).json()
        deadline = time.monotonic() + 60
        while client.get(f"jobs/{job['id']}").json()["state"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
    return {"slice_id": [lease["id"]], "job_id": [job["id"]], "profile_id": ["prof-000000000000"]}


def _seeded_document(lab: LabServer, folder: Path) -> Path:
    doc: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    ids = _real_ids(lab)
    for item in doc["paths"].values():
        for parameter in item.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in ids:
                parameter["schema"] = {"anyOf": [{"type": "string", "enum": ids[parameter["name"]]}, parameter["schema"]]}
    path = folder / "openapi.json"
    path.write_text(json.dumps(doc))
    return path


# Bounded by time, not by examples: schemathesis keeps generating until --max-time; the shared
# 2-core machines ran 17 to 36 cases a second, so 60 s gives 500 cases and more even on a slow one.
@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server: LabServer, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [
            exe, "run", str(_seeded_document(server, tmp_path)), "--url", server.api.rstrip("/"),
            "-H", f"Authorization: token {server.token}",
            "--checks", "not_a_server_error", "--max-examples", "1000", "--max-time", "60",
            "--phases", "examples,coverage,fuzzing", "--seed", "1", "--no-color",
            "--report", "ndjson", "--report-ndjson-path", str(tmp_path / "events.ndjson"),
        ],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "20 selected" in result.stdout, result.stdout[-3000:]
    cases = re.search(r"Test cases:\s*([\d,]+) generated", result.stdout)
    assert cases is not None, result.stdout[-3000:]
    generated = int(cases.group(1).replace(",", ""))
    print(f"schemathesis: {generated:,} cases, 0 server errors")
    assert generated >= MIN_CASES, result.stdout[-3000:]
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:4000]
    assert not re.search(r"\b5\d\d (GET|POST|DELETE|PUT|PATCH) ", log), log[-4000:]
