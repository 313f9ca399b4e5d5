"""`workbench endpoints deploy|list|show|bench|stop` as separate processes: the JSON contract, and a
server that outlives the command that deployed it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(home), WORKBENCH_USER="cli-user")
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli-home")
    yield path
    from workbench import Workbench

    with Workbench(home=path, user="cli-user") as wb:  # whatever a failed test left running
        for ep in wb.endpoints.list():
            wb.endpoints.stop(ep.id)


@pytest.fixture(scope="module")
def deployed(home: Path, mlp_onnx: tuple[Path, Any]) -> dict[str, Any]:
    result = _cli(home, "endpoints", "deploy", str(mlp_onnx[0]), "--slice", "cpu", "--name", "mlp", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_deploy_json_contract_and_the_server_outlives_the_command(deployed: dict[str, Any], mlp_onnx: tuple[Path, Any]) -> None:
    assert set(deployed) == {"id", "name", "url", "state", "token"}
    assert deployed["state"] == "ready" and deployed["name"] == "mlp" and deployed["token"]
    assert httpx.get(f"{deployed['url']}/v2/health/ready").status_code == 200
    x = np.arange(32, dtype=np.float32).reshape(2, 16) / 32
    response = httpx.post(f"{deployed['url']}/v2/models/mlp/infer", headers={"authorization": f"Bearer {deployed['token']}"},
                          json={"inputs": [{"name": "input", "shape": [2, 16], "datatype": "FP32", "data": x.ravel().tolist()}]})
    (out,) = response.json()["outputs"]
    want = ort.InferenceSession(str(mlp_onnx[0])).run(None, {"input": x})[0]
    assert {"name", "shape", "datatype", "data"} <= set(out) and out["shape"] == [2, 4]
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(2, 4), want)


def test_list_show_bench(home: Path, deployed: dict[str, Any]) -> None:
    listed = json.loads(_cli(home, "endpoints", "list", "--json").stdout)
    assert [e["id"] for e in listed] == [deployed["id"]]
    shown = json.loads(_cli(home, "endpoints", "show", "mlp", "--json").stdout)
    assert shown["id"] == deployed["id"] and shown["inputs"][0]["shape"] == [-1, 16]
    assert "mlp" in _cli(home, "endpoints", "list").stdout
    result = _cli(home, "endpoints", "bench", deployed["id"], "--concurrency", "1,4", "--seconds", "1", "--warmup", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    assert set(bench) == {"results", "baseline"} and set(bench["baseline"]) == {"p50_ms", "rps"}
    assert [r["concurrency"] for r in bench["results"]] == [1, 4]
    for r in bench["results"]:
        assert set(r) == {"concurrency", "requests", "rps", "p50_ms", "p95_ms", "p99_ms"}
        assert r["requests"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert json.loads(_cli(home, "endpoints", "show", deployed["id"], "--json").stdout)["last_bench"] == bench


def test_errors_are_one_line_and_exit_1(home: Path, deployed: dict[str, Any], tmp_path: Path) -> None:
    bad = _cli(home, "endpoints", "bench", deployed["id"], "--concurrency", "0,x")
    assert bad.returncode == 1 and "--concurrency '0,x' must be whole numbers" in bad.stderr
    text = tmp_path / "model.onnx"
    text.write_text("hello")
    bad = _cli(home, "endpoints", "deploy", str(text), "--json")
    assert bad.returncode == 1 and "is not an ONNX model" in bad.stderr and bad.stdout == ""
    assert _cli(home, "endpoints", "show", "ep-nothing").returncode == 1


def test_stop_json_then_the_url_no_longer_answers(home: Path, deployed: dict[str, Any]) -> None:
    result = _cli(home, "endpoints", "stop", deployed["id"], "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["state"] == "stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{deployed['url']}/v2/health/ready", timeout=2)
    assert json.loads(_cli(home, "endpoints", "list", "--json").stdout) == []
    assert json.loads(_cli(home, "slices", "list", "--json").stdout) == []  # the lease it requested is released


def test_export_a_modules_weights_with_parity(home: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "examples"))
    from torch_cnn_digits import build_model

    torch.manual_seed(3)
    weights = tmp_path / "cnn_weights.pt"
    torch.save(build_model().state_dict(), weights)
    out = tmp_path / "cnn.onnx"
    result = _cli(home, "endpoints", "export", "examples/torch_cnn_digits.py:build_model", "--shape", "2,1,8,8",
                  "--weights", str(weights), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["ok"] and exported["path"] == str(out) and out.is_file()
    assert exported["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    want = build_model()
    want.load_state_dict(torch.load(weights))
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    got = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "other.pt")
    from workbench import Workbench
    from workbench.errors import InvalidRequest

    with Workbench(home=home, user="cli-user") as wb:  # in this process: the refusals need no exporter
        factory = f"{ROOT / 'examples' / 'torch_cnn_digits.py'}:build_model"
        with pytest.raises(InvalidRequest, match="do not fit what .*torch_cnn_digits.py:build_model builds"):
            wb.endpoints.export_from(factory, [1, 1, 8, 8], weights=tmp_path / "other.pt")
        with pytest.raises(InvalidRequest, match="has no function 'nothing'"):
            wb.endpoints.export_from(factory.replace("build_model", "nothing"), [1, 1, 8, 8])
        with pytest.raises(InvalidRequest, match="neither a file nor JOB_ID:ARTIFACT"):
            wb.endpoints.export_from(factory, [1, 1, 8, 8], weights=tmp_path / "missing.pt")
