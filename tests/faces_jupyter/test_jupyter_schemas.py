"""The OpenAPI document is generated from the server's models and agrees with them: the committed
file is what `python -m workbench.jupyter.openapi` writes, and every bound the document states is
the one the server enforces (a value at the bound is accepted, one past it is refused with 400)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workbench.errors import InvalidRequest
from workbench.jupyter.openapi import OPENAPI_PATH, render
from workbench.jupyter.schemas import (
    JobRequestBody,
    KernelResultsQuery,
    LogQuery,
    SliceRequestBody,
    parse_body,
    parse_query,
)

DOC: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
MODELS = {"SliceRequestBody": (SliceRequestBody, {"spec": "cpu"}), "JobRequestBody": (JobRequestBody, {"target": "a.py"})}


def test_the_committed_document_is_the_generated_one() -> None:
    assert OPENAPI_PATH.read_text() == render(), "openapi.json is stale: run python -m workbench.jupyter.openapi"


def _accepts(model: Any, body: dict[str, Any]) -> bool:
    try:
        parse_body(model, json.dumps(body).encode())
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fields_and_required_agree(name: str) -> None:
    model, _ = MODELS[name]
    schema = DOC["components"]["schemas"][name]
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema["required"]) == {k for k, f in model.model_fields.items() if f.is_required()}
    assert schema["additionalProperties"] is False and not _accepts(model, {**MODELS[name][1], "extra": 1})


def _bounded(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for field, prop in schema["properties"].items():
        for branch in prop.get("anyOf", [prop]):
            if any(k in branch for k in ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "maxItems")):
                out.append((field, branch))
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_stated_bound_is_the_enforced_bound(name: str) -> None:
    model, base = MODELS[name]
    checked = 0
    for field, branch in _bounded(DOC["components"]["schemas"][name]):
        if branch["type"] == "string":
            low, high = branch.get("minLength", 0), branch["maxLength"]
            if field in ("spec", "slice"):  # text the core parses: the length bound holds for any text
                assert not _accepts(model, {**base, field: "x" * (high + 1)})
                checked += 1
                continue
            assert _accepts(model, {**base, field: "x" * high}) and not _accepts(model, {**base, field: "x" * (high + 1)})
            if low:
                assert not _accepts(model, {**base, field: ""})
        elif branch["type"] == "array":
            item = "H100-80GB"
            assert _accepts(model, {**base, field: [item] * branch["maxItems"]})
            assert not _accepts(model, {**base, field: [item] * (branch["maxItems"] + 1)}) and not _accepts(model, {**base, field: []})
        else:
            step = 1 if branch["type"] == "integer" else 0.001
            hi = branch["maximum"]
            if "exclusiveMinimum" in branch:  # OpenAPI 3.1: the bound itself is refused
                lo = branch["exclusiveMinimum"]
                assert _accepts(model, {**base, field: lo + step}) and not _accepts(model, {**base, field: lo}), field
            else:
                lo = branch["minimum"]
                assert _accepts(model, {**base, field: lo}) and not _accepts(model, {**base, field: lo - step}), field
            assert _accepts(model, {**base, field: hi}) and not _accepts(model, {**base, field: hi + step}), field
        checked += 1
    assert checked >= (4 if name == "SliceRequestBody" else 6)


def test_query_parameters_agree() -> None:
    models = {"/jobs/{job_id}/logs": LogQuery, "/kernels/results": KernelResultsQuery}
    checked = 0
    for path, item in DOC["paths"].items():
        for operation in (v for k, v in item.items() if k != "parameters"):
            for parameter in operation.get("parameters", []):
                name, schema = parameter["name"], parameter["schema"]
                if schema.get("enum") == ["true", "false"]:
                    for bad in ("yes", "1", "TRUE", ""):
                        with pytest.raises(InvalidRequest, match="use .*=true or .*=false"):
                            parse_query(type(_query_model(path)), {name: bad}.get)
                    checked += 1
                elif schema.get("type") == "integer":
                    model = models[path]
                    lo, hi = schema["minimum"], schema["maximum"]
                    assert getattr(parse_query(model, {name: str(hi)}.get), name) == hi
                    assert getattr(parse_query(model, {name: str(lo)}.get), name) == lo
                    for bad in (str(hi + 1), str(lo - 1)):
                        with pytest.raises(InvalidRequest, match="out of range"):
                            parse_query(model, {name: bad}.get)
                    checked += 1
                elif schema.get("type") == "string":
                    model = models[path]
                    assert getattr(parse_query(model, {name: "x" * schema["maxLength"]}.get), name)
                    with pytest.raises(InvalidRequest, match=name):
                        parse_query(model, {name: "x" * (schema["maxLength"] + 1)}.get)
                    checked += 1
    assert checked >= 8


def _query_model(path: str) -> Any:
    from workbench.jupyter.openapi import OPERATIONS

    return next(op.query() for op in OPERATIONS if op.path == path and op.query is not None)
