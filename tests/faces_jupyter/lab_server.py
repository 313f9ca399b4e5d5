"""A real JupyterLab in a subprocess, on a free port, with a token: what a researcher runs.

Used by the schemathesis run (which needs a server it can call synchronously) and by the browser
test. The server gets its own data directory and Jupyter config/runtime/workspace folders, so it
never reads the developer's, and it is served under a hub-like prefix.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PREFIX = "/user/a%40b/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT/user/a%40b/
    token: str
    root: Path
    home: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return self.url + "workbench/api/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


NO_NEWS = '{"fetchNews": "false", "checkForUpdates": false}'


def start_lab(base: Path, *, app: str = "jupyterlab", timeout_s: float = 60.0, extra_env: dict[str, str] | None = None) -> LabServer:
    token = secrets.token_hex(16)
    port = free_port()
    root, home, jupyter = base / "root", base / "wbhome", base / "jupyter"
    settings = jupyter / "settings"
    for folder in (root, home, jupyter / "config", jupyter / "runtime", jupyter / "workspaces",
                   settings / "@jupyterlab" / "apputils-extension"):
        folder.mkdir(parents=True, exist_ok=True)
    # no "get notified about Jupyter news?" toast over the screenshots
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(NO_NEWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTERHUB_"))}
    env.update(
        WORKBENCH_HOME=str(home),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"),
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    log_path = base / "jupyter.log"
    args = [
        sys.executable, "-m", app, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--ServerApp.base_url={PREFIX}", "--ServerApp.allow_root=True", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={settings}",
    ]
    if app != "jupyterlab":
        args = [a for a in args if not a.startswith("--LabApp.")]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(f"http://127.0.0.1:{port}{PREFIX}", token, root, home, log_path, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(server.api, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"JupyterLab did not answer within {timeout_s:g} s:\n{log_path.read_text()[-3000:]}")
