"""Fixtures for the endpoints tests: a small MLP exported once per session, a Workbench and one
served endpoint per module (a server process costs about a second to start)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("starlette")


@pytest.fixture(scope="session")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A 16→64→4 MLP exported with torch.onnx.export(dynamo=True): (its .onnx path, the module)."""
    torch = pytest.importorskip("torch")
    from workbench.endpoints.export import export

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).eval()
    result = export(model, torch.randn(2, 16), tmp_path_factory.mktemp("models") / "mlp.onnx")
    assert result.ok, result
    return result.path, model


@pytest.fixture(scope="module")
def ep_wb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from workbench import Workbench

    bench = Workbench(home=tmp_path_factory.mktemp("endpoints-home"), user="ada")
    yield bench
    for ep in bench.endpoints.list():
        bench.endpoints.stop(ep.id)
    bench.close()
