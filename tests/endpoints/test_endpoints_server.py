"""One real endpoint server process for the module: the KServe v2 contract, bad input, batching,
metrics, ownership, and the endpoint's life tied to its lease."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from workbench.errors import Conflict, Forbidden, InvalidRequest


@pytest.fixture(scope="module")
def served(ep_wb: Any, mlp_onnx: tuple[Path, Any]) -> Any:
    path, _ = mlp_onnx
    return ep_wb.endpoints.deploy(path, slice="cpu", name="mlp", max_batch_size=16, max_wait_ms=20, max_body_bytes=64 * 1024)


def _post(ep: Any, body: Any, *, token: str | None = "same", name: str | None = None, raw: bytes | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {ep.token if token == 'same' else token}"} if token else {}
    url = f"{ep.url}/v2/models/{name or ep.name}/infer"
    return httpx.post(url, content=raw, headers=headers, timeout=30) if raw is not None else httpx.post(url, json=body, headers=headers, timeout=30)


def _tensor(x: np.ndarray, name: str = "input", datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}


def test_deploy_contract_and_answers_equal_onnxruntime(served: Any, mlp_onnx: tuple[Path, Any]) -> None:
    assert set(served.deploy_json()) == {"id", "name", "url", "state", "token"}
    assert served.state == "ready" and served.token and served.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{served.url}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{served.url}/v2/models/mlp", headers={"authorization": f"Bearer {served.token}"}).json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 16]}]
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    response = _post(served, {"inputs": [_tensor(x)]})
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    want = ort.InferenceSession(str(mlp_onnx[0])).run(None, {"input": x})[0]
    assert out["name"] == "output" and out["shape"] == [3, 4] and out["datatype"] == "FP32"
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(3, 4), want)
    np.testing.assert_array_equal(served.infer(x)["output"], want)  # the facade's client


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"inputs": [_tensor(np.ones((1, 15), np.float32))]}, 400, r"has shape \[1, 15\]; the model takes \['N', 16\]"),
    ({"inputs": [_tensor(np.ones((1, 16)), datatype="FP64")]}, 400, "is FP64; the model takes FP32"),
    ({"inputs": [_tensor(np.ones((1, 16), np.float32), name="x")]}, 400, r"unknown input 'x'; model 'mlp' takes \['input'\]"),
    ({"inputs": []}, 400, r"missing input\(s\) \['input'\]"),
    ({"inputs": [{**_tensor(np.ones((1, 16), np.float32)), "data": [1.0, 2.0]}]}, 400, "has 2 values; shape"),
    ({"inputs": [{**_tensor(np.ones((1, 16), np.float32)), "data": ["a"] * 16}]}, 400, "data is not FP32 numbers"),
    ({"inputs": [_tensor(np.ones((17, 16), np.float32))]}, 400, "over max_batch_size=16"),
    ({"instances": [1, 2]}, 400, "request body must be"),
])
def test_bad_requests_get_a_4xx_naming_what_is_wrong(served: Any, body: Any, status: int, message: str) -> None:
    response = _post(served, body)
    assert response.status_code == status
    assert re.search(message, response.json()["error"]), response.text


def test_auth_model_name_body_limit_and_json_errors(served: Any) -> None:
    good = {"inputs": [_tensor(np.ones((1, 16), np.float32))]}
    assert _post(served, good, token=None).status_code == 401
    assert _post(served, good, token="wrong").status_code == 401
    assert "bearer token" in _post(served, good, token=None).json()["error"]
    unknown = _post(served, good, name="resnet")
    assert unknown.status_code == 404 and "serves 'mlp'" in unknown.json()["error"]
    big = _post(served, None, raw=b"{" + b" " * (64 * 1024) + b"}")
    assert big.status_code == 413 and "over this endpoint's limit of 65,536 bytes" in big.json()["error"]
    assert _post(served, None, raw=b"not json").status_code == 400
    # after all of that, it still serves
    assert _post(served, good).status_code == 200


def test_concurrent_requests_are_batched_and_counted(served: Any, mlp_onnx: tuple[Path, Any]) -> None:
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(48)]
    session = ort.InferenceSession(str(mlp_onnx[0]))
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda x: _post(served, {"inputs": [_tensor(x)]}), xs))
    for x, response in zip(xs, responses, strict=True):
        got = np.asarray(response.json()["outputs"][0]["data"], np.float32).reshape(1, 4)
        np.testing.assert_allclose(got, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-6)
    metrics = httpx.get(f"{served.url}/metrics", headers={"authorization": f"Bearer {served.token}"}).text
    assert 'workbench_endpoint_requests_total{code="200",model="mlp"}' in metrics
    assert 'workbench_endpoint_requests_total{code="400",model="mlp"}' in metrics
    assert "workbench_endpoint_request_latency_seconds_bucket" in metrics
    runs = _metric(metrics, 'workbench_endpoint_batch_size_count{model="mlp"}')
    rows = _metric(metrics, 'workbench_endpoint_batch_size_sum{model="mlp"}')
    assert rows > runs, "12 concurrent clients with max_wait_ms=20 never shared a batch"
    assert httpx.get(f"{served.url}/metrics").status_code == 401


def _metric(text: str, key: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))


def test_deploy_refusals_leave_nothing_running(ep_wb: Any, mlp_onnx: tuple[Path, Any], tmp_path: Path) -> None:
    from workbench import Workbench

    before = {e.id for e in ep_wb.endpoints.list()}
    leases_before = {lease.id for lease in ep_wb.slices.list()}
    not_onnx = tmp_path / "weights.onnx"
    not_onnx.write_bytes(b"\x00\x01 torch state dict")
    with pytest.raises(InvalidRequest, match="not an ONNX model"):
        ep_wb.endpoints.deploy(not_onnx, slice="cpu")
    with pytest.raises(InvalidRequest, match="does not exist"):
        ep_wb.endpoints.deploy(tmp_path / "nothing.onnx", slice="cpu")
    with pytest.raises(InvalidRequest, match="endpoint name"):
        ep_wb.endpoints.deploy(mlp_onnx[0], slice="cpu", name="a/b")
    bob = Workbench(home=ep_wb.home, user="bob")
    try:
        bobs = bob.slices.request("cpu")
        with pytest.raises(Forbidden, match=f"slice {bobs.id} belongs to bob, not ada"):
            ep_wb.endpoints.deploy(mlp_onnx[0], slice=bobs.id)
        bobs.release()
        with pytest.raises(Conflict, match="is released, not active"):
            bob.endpoints.deploy(mlp_onnx[0], slice=bobs.id)
    finally:
        bob.close()
    assert {e.id for e in ep_wb.endpoints.list()} == before
    assert {lease.id for lease in ep_wb.slices.list()} == leases_before


def test_stop_and_lease_end_stop_the_server(ep_wb: Any, mlp_onnx: tuple[Path, Any]) -> None:
    """Three ways an endpoint ends: `stop`, its lease released, its lease expired (the sweep)."""
    from workbench.store.models import LeaseRow

    path = mlp_onnx[0]
    stopped = ep_wb.endpoints.deploy(path, slice="cpu", name="a", token=False)
    assert stopped.token is None and httpx.post(stopped.infer_url, json={"inputs": [_tensor(np.ones((1, 16), np.float32))]}).status_code == 200
    stopped = ep_wb.endpoints.stop(stopped.id)
    assert stopped.state == "stopped" and "stopped by ada" in stopped.reason
    assert ep_wb.slices.get(stopped.lease_id).state == "released"  # it had requested the lease itself
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stopped.url}/v2/health/ready", timeout=2)
    with pytest.raises(Conflict, match="is stopped"):
        ep_wb.endpoints.infer(stopped.id, np.ones((1, 16), np.float32))

    lease = ep_wb.slices.request("cpu")
    on_lease = ep_wb.endpoints.deploy(path, slice=lease, name="b")
    lease.release()
    ended = ep_wb.endpoints.get(on_lease.id)
    assert ended.state == "stopped" and ended.reason == f"its slice {lease.id} was released"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{on_lease.url}/v2/health/ready", timeout=2)

    expiring = ep_wb.endpoints.deploy(path, slice="cpu", name="c")
    with ep_wb.store.session() as s:
        s.get(LeaseRow, expiring.lease_id).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ep_wb.slices.sweep()
    ended = ep_wb.endpoints.get(expiring.id)
    assert ended.state == "stopped" and "was expired" in ended.reason
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{expiring.url}/v2/health/ready", timeout=2)


def test_server_watchdog_ends_it_when_its_lease_ends_elsewhere(ep_wb: Any, mlp_onnx: tuple[Path, Any]) -> None:
    """A lease ended by another process (a controller, another node) without calling the endpoints
    service: the server sees it in the store and exits on its own."""
    from workbench.store.models import LeaseRow

    ep = ep_wb.endpoints.deploy(mlp_onnx[0], slice="cpu", name="d")
    with ep_wb.store.session() as s:
        s.get(LeaseRow, ep.lease_id).state = "preempted"
    deadline = time.monotonic() + 15
    while ep_wb.endpoints.get(ep.id).state == "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
    ended = ep_wb.endpoints.get(ep.id)
    assert ended.state == "stopped" and ended.reason == f"its slice {ep.lease_id} was preempted"
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{ep.url}/v2/health/ready", timeout=1)
        except httpx.ConnectError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the server still answers after its lease was preempted")
