"""`pip install` alone enables both halves: the server extension and the prebuilt lab extension."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_jupyter_lists_both_extensions_enabled() -> None:
    commands = [["labextension", "list"], ["server", "extension", "list"]]
    running = [subprocess.Popen([sys.executable, "-m", "jupyter", *c], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for c in commands]  # side by side: each takes seconds
    labext, serverext = (re.sub(r"\x1b\[[0-9;]*m", "", p.communicate(timeout=90)[0]) for p in running)
    assert re.search(r"gpu-workbench-jupyterlab v\S+ enabled\s+OK \(python, gpu-workbench\)", labext), labext
    assert re.search(r"workbench\.jupyter\s+enabled", serverext), serverext


def test_the_committed_build_matches_the_source_package() -> None:
    """The prebuilt output is committed (a wheel needs no Node.js); it must be the build of this source."""
    built = json.loads((ROOT / "workbench" / "labextension" / "package.json").read_text())
    source = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert built["name"] == source["name"] == "gpu-workbench-jupyterlab"
    assert built["version"] == source["version"]
    assert built["dependencies"] == source["dependencies"]
    load = ROOT / "workbench" / "labextension" / built["jupyterlab"]["_build"]["load"]
    assert load.is_file()
    lock = json.loads((ROOT / "labextension" / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == source["dependencies"]
