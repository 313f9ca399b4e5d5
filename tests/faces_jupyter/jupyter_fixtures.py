"""pytest-jupyter's in-process Jupyter server with the extension on, under a JupyterHub-like
prefix (`/user/a%40b/`) so every test also checks URL joining.

Test modules that use it do `from jupyter_fixtures import *`: pytest-jupyter's autouse event-loop
fixtures must not reach the tests that drive a real server and a browser (Playwright runs its
own loop).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_fetch, jp_serverapp, ...)

HUB_PREFIX = "/user/a%40b/"


@pytest.fixture
def jp_base_url() -> str:
    return HUB_PREFIX


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}}}


@pytest.fixture(autouse=True)
def _close_the_servers_workbench(jp_serverapp: Any) -> Any:
    """Stop what the extension started when the test's server goes: its Workbench (job monitor,
    Dask), its API thread pool and its lease sweeps. A real server does this at exit; in-process
    test servers would otherwise leave threads behind that use the database."""
    yield
    holder = jp_serverapp.web_app.settings.get("workbench_holder")
    if holder is not None:
        holder.close()


@pytest.fixture
def api(jp_fetch: Any) -> Any:
    """`await api("GET", "slices")` -> (status, json), without raising on 4xx/5xx."""

    async def call(method: str, path: str, body: Any = None, raw: bytes | None = None, **kw: Any) -> tuple[int, Any]:
        from tornado.httpclient import HTTPClientError

        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if method in ("POST", "PUT", "PATCH") and raw is None:
            raw = b""
        parts = [p for p in path.split("/") if p]
        try:
            response = await jp_fetch("workbench", "api", *parts, method=method, body=raw, **kw)
        except HTTPClientError as exc:
            assert exc.response is not None, exc
            return exc.code, json.loads(exc.response.body)
        return response.code, json.loads(response.body)

    return call
