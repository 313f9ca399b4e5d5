"""The OpenAPI document and the server's request models agree: every bound the document states is
the one the server enforces (a value at the bound is accepted, one past it is refused with 400)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workbench.errors import InvalidRequest
from workbench.jupyter.handlers import OPENAPI_PATH
from workbench.jupyter.schemas import JobRequestBody, SliceRequestBody, parse_body, parse_flag, parse_int

DOC: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
MODELS = {"SliceRequest": (SliceRequestBody, {"spec": "cpu"}), "JobRequest": (JobRequestBody, {"target": "a.py"})}


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
        for branch in prop.get("oneOf", [prop]):
            if any(k in branch for k in ("minimum", "maximum", "minLength", "maxLength")):
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
        else:
            lo, hi = branch["minimum"], branch["maximum"]
            inside_low = lo if not branch.get("exclusiveMinimum") else (lo + 0.001 if branch["type"] == "number" else lo + 1)
            step = 1 if branch["type"] == "integer" else 0.001
            assert _accepts(model, {**base, field: inside_low}), (field, inside_low)
            assert _accepts(model, {**base, field: hi}), (field, hi)
            assert not _accepts(model, {**base, field: hi + step}), (field, hi + step)
            assert not _accepts(model, {**base, field: lo if branch.get("exclusiveMinimum") else lo - step}), field
        checked += 1
    assert checked >= (2 if name == "SliceRequest" else 6)


def test_query_parameters_agree() -> None:
    for path, item in DOC["paths"].items():
        for operation in (v for k, v in item.items() if k != "parameters"):
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                if schema.get("enum") == ["true", "false"]:
                    assert parse_flag("true", "x") and not parse_flag("false", "x")
                    for bad in ("yes", "1", "TRUE", ""):
                        with pytest.raises(InvalidRequest):
                            parse_flag(bad, parameter["name"])
                elif schema.get("type") == "integer":
                    lo, hi = schema["minimum"], schema["maximum"]
                    assert parse_int(str(hi), "x", 0, minimum=lo, maximum=hi) == hi, path
                    with pytest.raises(InvalidRequest, match="out of range"):
                        parse_int(str(hi + 1), "x", 0, minimum=lo, maximum=hi)
