"""A real JupyterHub (local process spawner, dummy authenticator, configurable-http-proxy) with a
single-user server that runs the workbench: the hub's user owns what the API does, another
user cannot reach it, and stopping the server gives the slices back. Skipped without jupyterhub.

The user is `alice`, not `a@b`: the pip-installable configurable-http-proxy re-encodes `@` in the
path it forwards (`/user/a%40b/`) while the server's base URL is `/user/a@b/`, which breaks every
Jupyter route alike (the npm proxy forwards the path as it came). The `%40` prefix itself is
tested in-process (tests/faces_jupyter/jupyter_fixtures.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lab_server import free_port

pytest.importorskip("jupyterhub", reason="the jupyterhub package is not installed")
pytestmark = pytest.mark.slow

SERVICE_TOKEN = "workbench-test-service-" + os.urandom(8).hex()


@dataclass
class Hub:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, **kw: object) -> requests.Response:
        return requests.request(method, f"{self.url}hub/api/{path}", headers={"Authorization": f"token {SERVICE_TOKEN}"},
                                timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if not shutil.which("configurable-http-proxy", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")):
        pytest.skip("configurable-http-proxy is not installed")
    base = tmp_path_factory.mktemp("hub")
    home = base / "wbhome"
    port, hub_port = free_port(), free_port()
    config = base / "jupyterhub_config.py"
    config.write_text(f"""
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{base / 'hub.sqlite'}"
c.JupyterHub.cookie_secret_file = "{base / 'cookie_secret'}"
c.ConfigurableHTTPProxy.pid_file = "{base / 'proxy.pid'}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{base}/homes/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.start_timeout = 60
c.Spawner.environment = {{"WORKBENCH_HOME": "{home}"}}
c.JupyterHub.services = [{{"name": "tester", "api_token": "{SERVICE_TOKEN}"}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
                             "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"]}}]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTERHUB_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log = base / "hub.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=base, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{port}/", home, log, process)
    deadline = time.monotonic() + 60
    while True:
        try:
            if hub.api("GET", "").ok:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"JupyterHub did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    yield hub
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def user_token(hub: Hub, name: str) -> str:
    assert hub.api("POST", f"users/{name}").status_code in (201, 409)
    r = hub.api("POST", f"users/{name}/tokens", json={"note": "test"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def test_a_hub_user_drives_the_workbench_in_their_server(hub: Hub) -> None:
    token = user_token(hub, "alice")
    carol = user_token(hub, "carol")
    r = hub.api("POST", "users/alice/server")
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 90
    while not (hub.api("GET", "users/alice").json().get("servers", {}).get("", {}).get("ready")):
        assert time.monotonic() < deadline, hub.log.read_text()[-4000:]
        time.sleep(0.3)
    server = hub.url + "user/alice/"
    as_alice = {"Authorization": f"token {token}"}

    info = requests.get(server + "workbench/api/", headers=as_alice, timeout=30)
    assert info.status_code == 200, info.text
    assert info.json()["user"] == "alice"
    lease = requests.post(server + "workbench/api/slices", json={"spec": "cpu:1"}, headers=as_alice, timeout=30).json()
    assert lease["owner"] == "alice" and lease["state"] == "active"

    # another hub user cannot reach alice's server at all
    r = requests.get(server + "workbench/api/slices", headers={"Authorization": f"token {carol}"}, timeout=30,
                     allow_redirects=False)
    assert r.status_code in (401, 403, 404), (r.status_code, r.text[:300])

    # the hub stops the server (as the idle culler does): the slice is given back
    assert hub.api("DELETE", "users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while hub.api("GET", "users/alice").json().get("servers", {}).get(""):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    from workbench import Workbench

    with Workbench(home=hub.home, user="alice") as wb:
        assert wb.slices.get(lease["id"]).state == "released"
