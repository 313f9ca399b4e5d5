"""Helpers of the browser tests: start a real `workbench serve`, save screenshots.

The browser is never downloaded: Playwright launches `/usr/bin/chromium` (Debian's package);
tests marked `requires_browser` are skipped when it is missing. Screenshots go to the folder in
`WORKBENCH_TEST_ARTIFACTS` (default `tests/artifacts/`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PREFIX = "/user/a%40b/workbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("WORKBENCH_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Dashboard:
    """A running `workbench serve`: its base URL (with the prefix and a trailing slash) and process."""

    url: str
    port: int
    prefix: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dashboard(home: Path, prefix: str = "", port: int | None = None, extra_env: dict[str, str] | None = None) -> Dashboard:
    """Start `workbench serve` as a subprocess and wait until it answers HTTP."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_") or k.startswith("WORKBENCH_TEST_")}
    env |= {"WORKBENCH_HOME": str(home), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"serve-{port}.log"
    args = [sys.executable, "-m", "workbench", "serve", "--port", str(port), "--no-show"]
    if prefix:
        args += ["--prefix", prefix + "/"]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{prefix}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"workbench serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Dashboard(url, port, prefix, home, process, log_path)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"workbench serve did not listen on {port} within 60 s:\n{log_path.read_text()}")


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot as `<artifacts>/<name>.png` and return its path."""
    path = artifacts_dir() / f"{name}.png"
    # The template scrolls inside its main area, so grow the viewport to the content for the shot.
    height = page.evaluate(  # type: ignore[attr-defined]
        "() => Math.max(...[...document.querySelectorAll('#main, .main, body')].map(e => e.scrollHeight))")
    size = page.viewport_size  # type: ignore[attr-defined]
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 20, size["height"]), 4000)})  # type: ignore[attr-defined]
    page.wait_for_timeout(300)  # type: ignore[attr-defined]
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size(size)  # type: ignore[attr-defined]
    return path
