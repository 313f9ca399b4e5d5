"""Endpoints through the Jupyter server: the REST list with requests/s, inference authenticated by
Jupyter (the handler adds the endpoint's token), stop; and the raw KServe routes through
jupyter-server-proxy's `/proxy/PORT/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jupyter_fixtures import *  # noqa: F403  (api, jp_fetch, ...)
from onnx_models import LINEAR_WEIGHTS, linear_onnx

pytest.importorskip("onnxruntime")


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True, "jupyter_server_proxy": True}}}


async def test_list_infer_through_jupyter_and_stop(api: Any, jp_fetch: Any, store_home: Path, tmp_path: Path) -> None:
    from workbench import Workbench
    from workbench.config import load_settings

    with Workbench(home=store_home, user=load_settings().user) as wb:
        ep = wb.endpoints.deploy(linear_onnx(tmp_path / "mlp.onnx"), slice="cpu", name="mlp")
        try:
            x = np.ones((2, 16), np.float32)
            body = {"inputs": [{"name": "input", "shape": [2, 16], "datatype": "FP32", "data": x.ravel().tolist()}]}
            status, answer = await api("POST", f"endpoints/{ep.id}/infer", body)
            assert status == 200, answer
            want = x @ LINEAR_WEIGHTS
            np.testing.assert_allclose(np.asarray(answer["outputs"][0]["data"]).reshape(2, 4), want, rtol=1e-6)
            status, answer = await api("POST", f"endpoints/{ep.id}/infer", {"inputs": [{**body["inputs"][0], "shape": [2, 15]}]})
            assert status == 400 and "has shape [2, 15]" in answer["error"]  # the endpoint's own 4xx, passed on

            status, listed = await api("GET", "endpoints")
            assert status == 200
            (item,) = listed["endpoints"]
            assert item["id"] == ep.id and item["state"] == "ready" and "token" not in item
            assert item["proxy_url"] == f"/user/a%40b/proxy/{ep.url.rsplit(':', 1)[1]}/"
            assert item["stats"]["requests"] == 1 and item["stats"]["rps"] >= 0

            # the raw KServe route through jupyter-server-proxy answers (health needs no token)
            port = ep.url.rsplit(":", 1)[1]
            response = await jp_fetch("proxy", port, "v2", "health", "ready", method="GET")
            assert response.code == 200 and json.loads(response.body) == {"ready": True}

            status, stopped = await api("DELETE", f"endpoints/{ep.id}")
            assert status == 200 and stopped["state"] == "stopped" and stopped["proxy_url"] is None
            status, answer = await api("POST", f"endpoints/{ep.id}/infer", body)
            assert status == 409 and "is stopped" in answer["error"]
        finally:
            wb.endpoints.stop(ep.id)


async def test_someone_elses_endpoint_is_forbidden(api: Any, as_user: Any, tmp_path: Path) -> None:
    bob = as_user("bob")
    ep = bob.endpoints.deploy(linear_onnx(tmp_path / "mlp.onnx"), slice="cpu", name="bobs")
    try:
        for method, path in [("GET", f"endpoints/{ep.id}"), ("DELETE", f"endpoints/{ep.id}"), ("POST", f"endpoints/{ep.id}/infer")]:
            status, answer = await api(method, path, {"inputs": []} if method == "POST" else None)
            assert status == 403 and "belongs to bob" in answer["error"], (method, answer)
        status, answer = await api("GET", "endpoints/ep-nothing")
        assert status == 404
    finally:
        bob.endpoints.stop(ep.id)
