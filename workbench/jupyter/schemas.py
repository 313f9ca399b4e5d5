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
from workbench.slices.offers import DeviceOffers, Offer, SliceKind
from workbench.slices.spec import parse_spec
from workbench.units import MAX_DURATION_S, MAX_INPUT_CHARS, MAX_NAME_CHARS, MAX_PRIORITY, MAX_RETRIES, echo

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound="_Query")
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


SPEC_DESCRIPTION = (
    '"cpu" or "cpu:N", a MIG profile such as "1g.10gb", a GPU fraction such as 0.25, GPU memory such as "10GiB", '
    '"gpu" or "gpu:N"; a fraction is from 0.01 (the smallest grant) to 1. `GET devices` lists the offers of this fleet.'
)
PRIORITY_DESCRIPTION = "Higher may preempt lower; from -1,000,000 to 1,000,000."
MAX_MODELS = 16


class SliceRequestBody(_Body):
    """`POST slices`."""

    spec: Spec = Field(description=SPEC_DESCRIPTION, examples=["cpu:1"])
    models: Annotated[list[Name], Field(min_length=1, max_length=MAX_MODELS)] | None = Field(
        None, description="GPU models the slice may be on (any of them), as an offer's `models` names.")
    project: Name | None = None
    priority: Priority = Field(0, description=PRIORITY_DESCRIPTION)
    wait: Literal[False] = Field(False, description=(
        "Only false: REST never waits in the queue; ask again (or use wb.slices.request(..., wait=True) in Python)."))


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

    target: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TARGET_CHARS)] = Field(
        description="Path of a .py script or .ipynb notebook, relative to the Jupyter root.", examples=["train.py"])
    slice: Annotated[SpecText | Number, AfterValidator(_lease_or_spec)] | None = Field(
        None, description="A lease id to run in, or a slice spec to request for the job.")
    name: Name | None = None
    framework: Literal["jax", "torch", "none"] | None = None
    project: Name | None = None
    priority: Priority = Field(0, description=PRIORITY_DESCRIPTION)
    retries: Annotated[StrictInt, Field(ge=0, le=MAX_RETRIES)] = 0
    timeout_s: Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False, strict=True)] | None = None
    params: dict[str, Any] | None = Field(None, description=(
        f"Keyword arguments, script arguments or notebook parameters: at most {MAX_PARAMS_BYTES // 1024} KiB of JSON, "
        f"nested at most {MAX_PARAMS_DEPTH} levels."))
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


# -- query parameters -------------------------------------------------------------------------
# Query strings are text: the handlers read each field with `parse_query`, which takes the
# bounds stated here (and in the OpenAPI document generated from these models).
Flag = Literal["true", "false"]


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EveryoneQuery(_Query):
    """`?all=true`: every user's things (admins only)."""

    all: Flag = Field("false", description="Every user's (admins only).")


class DevicesQuery(_Query):
    refresh: Flag = Field("false", description="Read the devices again (a discovered machine's GPUs, a fleet file).")


class LogQuery(_Query):
    offset: int = Field(0, ge=0, le=MAX_LOG_OFFSET, description="The byte to read from (`next_offset` of the last chunk).")


class KernelResultsQuery(_Query):
    kernel: StrictStr | None = Field(None, max_length=MAX_NAME_CHARS, description="Only this kernel's results.")
    limit: int = Field(50, ge=1, le=1000, description="At most this many (default 50).")


def parse_query(model: type[Q], read: Any) -> Q:
    """The query parameters as `model`: `read(name)` gives the raw text or None. Flags take exactly
    `true`/`false`, numbers are whole and within the field's bounds, text within its length."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        raw = read(name)
        if raw is None:
            continue
        if info.annotation is int:
            bounds = {k: getattr(m, k) for m in info.metadata for k in ("ge", "le") if hasattr(m, k)}
            values[name] = parse_int(raw, name, int(info.default), minimum=bounds["ge"], maximum=bounds["le"])
        elif info.annotation == Flag:
            values[name] = "true" if parse_flag(raw, name) else "false"
        else:
            values[name] = raw
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidRequest(f"{_field(first['loc'])}={echo(first.get('input'), 40)}: {first['msg']}") from None


# -- responses --------------------------------------------------------------------------------
# What the handlers answer. They are the contract of the OpenAPI document and of the lab
# extension's TypeScript types (generated from it); a response may carry more fields than
# listed (`extra="allow"`), never fewer, and tests check real answers against them.
class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(_Reply):
    error: str = Field(description="What went wrong and what would be valid, for a person.")
    reason: str = Field(description="bad_request | unauthorized | forbidden | not_found | conflict | unavailable | ...")


class Info(_Reply):
    user: str
    admin: bool
    version: str
    services: dict[str, bool]
    dashboard_url: str


class MigProfile(_Reply):
    name: str = Field(examples=["1g.10gb"])
    compute_slices: int
    memory_slices: int
    memory_bytes: int
    max_count: int
    starts: list[int]


class Device(_Reply):
    key: str = Field(examples=["node-0/3"])
    node: str
    index: int
    kind: Literal["gpu", "cpu"]
    model: str
    memory_bytes: int | None
    mig: bool
    mig_capable: bool
    uuid: str | None = None
    cores: int | None = None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    power_w: float | None = None
    source: str
    mig_profiles: list[MigProfile] = Field(description="The MIG profiles this GPU model's geometry allows (empty without MIG).")
    offers: list[Offer] = Field(description="What can be requested on this device (`wb.slices.offers()`).")


class NodeSummary(_Reply):
    name: str
    cpu_milli: int
    memory_mib: int
    devices: list[str]


class Inventory(_Reply):
    source: str
    gpu_count: int
    nodes: list[NodeSummary]
    devices: list[Device]
    offers: list[DeviceOffers] = Field(description="Each kind of device with what can be requested on it, GPUs first.")


class Lease(_Reply):
    id: str
    owner: str
    project: str
    kind: SliceKind
    state: str
    label: str = Field(description="What the slice is called in every face: `MIG 1g.10gb`, `0.25 GPU`, `CPU ×2`.")
    description: str
    node: str | None
    device_keys: list[str]
    profile: str | None
    gpu_milli: int
    cpu_milli: int
    reason: str | None
    queue_position: int | None
    expires_at: str | None
    renew_at: str | None = Field(None, description="When a face that shows this live lease renews it (null unless active or idle).")


class Slices(_Reply):
    slices: list[Lease]


class Job(_Reply):
    id: str
    name: str
    owner: str
    state: Literal["queued", "allocating", "running", "succeeded", "failed", "cancelled", "preempted"]
    target: str
    error: str | None
    lease_id: str | None
    slice_spec: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None


class Jobs(_Reply):
    jobs: list[Job]


class LogChunk(_Reply):
    id: str
    state: str
    offset: int
    next_offset: int
    text: str
    done: bool


class Profile(_Reply):
    id: str
    name: str
    owner: str | None
    job_id: str | None
    device: str | None
    framework: str | None
    format: str | None
    created_at: str | None


class Profiles(_Reply):
    profiles: list[Profile]


class ProfileSummary(_Reply):
    id: str
    name: str
    summary: dict[str, Any]


class Kernel(_Reply):
    name: str
    backend: str
    dtypes: list[str]
    framework_name: str | None
    source: str | None
    summary: str | None
    bound: str | None


class Kernels(_Reply):
    kernels: list[Kernel]


class KernelResults(_Reply):
    results: list[dict[str, Any]]


class Endpoint(_Reply):
    id: str
    name: str
    owner: str
    lease_id: str | None
    state: Literal["starting", "ready", "stopped", "failed"]
    url: str | None = Field(description="The KServe v2 root on the serving host (loopback)")
    proxy_url: str | None = Field(description="The same, through this Jupyter server's proxy")
    reason: str | None
    stats: dict[str, float] = Field(description="requests, rps (last 10 s), runs, mean_batch_rows; empty when not live")


class Endpoints(_Reply):
    endpoints: list[Endpoint]


class InferReply(_Reply):
    outputs: list[dict[str, Any]]
