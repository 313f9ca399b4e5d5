"""The REST API's request bodies and query parameters, as pydantic models with their bounds.

The handlers validate every body here before the core sees it, so hostile input (a priority of
2**63, a spec of 10**400, params nested 5,000 deep, a 1 MB project name) is a 400 that names the
field, never a 500 from the database. `openapi.json` states the same bounds; a test checks that
the two agree (`tests/faces_jupyter/test_jupyter_schemas.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from workbench.errors import InvalidRequest
from workbench.slices.spec import parse_spec
from workbench.units import MAX_DURATION_S, MAX_INPUT_CHARS, MAX_NAME_CHARS, MAX_PRIORITY, MAX_RETRIES, echo

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1024 * 1024
MAX_PARAMS_BYTES = 64 * 1024
MAX_PARAMS_DEPTH = 20
MAX_TARGET_CHARS = 1000
MAX_LOG_OFFSET = 2**40  # 1 TiB: beyond any job log, and inside every platform's file offsets

Name = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Priority = Annotated[StrictInt, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
SpecText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_INPUT_CHARS)]
Number = Annotated[float, Field(allow_inf_nan=False, strict=True)]


def _slice_spec(value: str | float | None) -> str | float | None:
    """A spec the core can parse (its message says what is valid): 0 < fraction <= 1, cpu:N, ..."""
    if value is not None:
        try:
            parse_spec(value)
        except InvalidRequest as exc:
            raise ValueError(str(exc)) from None
    return value


def _lease_or_spec(value: str | float) -> str | float:
    """A job's slice: a lease id (`lease-...`) or a slice spec."""
    return value if isinstance(value, str) and value.startswith("lease-") else _slice_spec(value)  # type: ignore[return-value]


Spec = Annotated[SpecText | Number, AfterValidator(_slice_spec)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SliceRequestBody(_Body):
    """`POST slices`."""

    spec: Spec
    project: Name | None = None
    priority: Priority = 0
    wait: Literal[False] = False


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_PARAMS_DEPTH:
            return depth
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


class JobRequestBody(_Body):
    """`POST jobs`."""

    target: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TARGET_CHARS)]
    slice: Annotated[SpecText | Number, AfterValidator(_lease_or_spec)] | None = None
    name: Name | None = None
    framework: Literal["jax", "torch", "none"] | None = None
    project: Name | None = None
    priority: Priority = 0
    retries: Annotated[StrictInt, Field(ge=0, le=MAX_RETRIES)] = 0
    timeout_s: Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False, strict=True)] | None = None
    params: dict[str, Any] | None = None
    profile: StrictBool = False

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any] | None) -> dict[str, Any] | None:
        if params is None:
            return None
        if _depth(params) > MAX_PARAMS_DEPTH:
            raise ValueError(f"nested more than {MAX_PARAMS_DEPTH} levels deep")
        try:
            size = len(orjson.dumps(params))
        except (TypeError, orjson.JSONEncodeError) as exc:  # integers beyond 64 bits
            raise ValueError(f"not storable as JSON ({exc})") from None
        if size > MAX_PARAMS_BYTES:
            raise ValueError(f"{size:,} bytes of JSON; at most {MAX_PARAMS_BYTES:,}")
        return params


def parse_body(model: type[M], raw: bytes) -> M:
    """The body as `model`, or `InvalidRequest` naming the first field that is wrong and why."""
    if not raw.strip():
        raise InvalidRequest("the request has no body; send a JSON object")
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the request body is {len(raw):,} bytes; at most {MAX_BODY_BYTES:,}")
    if b"\x00" in raw or b"\\u0000" in raw:  # no database or file system takes NUL characters
        raise InvalidRequest("the request body has a NUL character (\\u0000) in a text field")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc, model)) from None


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _field(first["loc"])
    if first["type"] == "json_invalid":
        return f"the request body is not valid JSON: {first['msg']}"
    if first["type"] == "model_type":
        return "the request body must be a JSON object"
    if first["type"] == "extra_forbidden":
        return f"unknown field {echo(where, 60)}; valid fields: {', '.join(sorted(model.model_fields))}"
    # A union (a spec is text or a number) reports each branch: the one whose type matched says more.
    same = [e for e in errors if _field(e["loc"]) == where]
    chosen = next((e for e in same if not e["type"].endswith("_type")), None)
    if chosen is None and len(same) > 1:
        kinds = " or ".join(dict.fromkeys(e["msg"].removeprefix("Input should be ") for e in same))
        return f'"{where}" should be {kinds}; got {echo(first.get("input"), 60)}'
    chosen = chosen or first
    more = len(errors) - len(same)
    got = "" if chosen["type"] == "value_error" else f"; got {echo(chosen.get('input'), 60)}"  # our own messages quote it
    return f'"{where}": {chosen["msg"].removeprefix("Value error, ")}{got}' + (f" (and {more} more)" if more else "")


def _field(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc if not _is_union_branch(part)) or "body"


def _is_union_branch(part: str | int) -> bool:
    # pydantic names the branch of a union it tried (`str`, `constrained-float`, `literal[False]`)
    return isinstance(part, str) and (part in {"str", "float", "int", "bool"} or "[" in part or part.startswith("constrained"))


def parse_flag(raw: str | None, name: str, default: bool = False) -> bool:
    """A boolean query parameter: exactly `true` or `false`, as the OpenAPI document lists."""
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name}={echo(raw, 40)} is not valid; use {name}=true or {name}=false")
    return raw == "true"


def parse_int(raw: str | None, name: str, default: int, *, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within [minimum, maximum]."""
    if raw is None:
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 20:
        raise InvalidRequest(f"{name}={echo(raw, 40)} is not a whole number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{name}={value} is out of range: from {minimum:,} to {maximum:,}")
    return value
