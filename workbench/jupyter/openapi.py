"""The OpenAPI document of the REST API, generated from the pydantic models in `schemas.py`.

`python -m workbench.jupyter.openapi` writes `openapi.json` beside this module; a test checks
that the committed file is what this generates, and the lab extension's TypeScript types are
generated from that file (`npm run build:types`), so the server, the document and the sidebar
cannot drift apart. The routes are listed here once; a test checks them against
`handlers.route_table()`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from workbench.jupyter import schemas as s

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
ID_PATTERN = "^[A-Za-z0-9_.:-]{1,80}$"
ERRORS = {
    "400": "Bad request: malformed JSON, a missing or unknown field, an invalid value.",
    "401": "Not authenticated: no token or login (send `Authorization: token ...`).",
    "403": "The thing belongs to another user (admins excepted), or a browser request without its XSRF token.",
    "404": "No such thing.",
    "409": "Not now: the request conflicts with the current state (capacity, a finished lease or job).",
    "413": "The request is larger than the endpoint takes.",
    "503": "The database, Dask or a service of the workbench is unavailable.",
}
DESCRIPTION = (
    "The GPU workbench inside Jupyter: devices, slices, jobs, profiles and kernels. Served by the "
    "`workbench.jupyter` server extension under `{base_url}workbench/api/`. Authenticate as with any Jupyter "
    "Server API: `Authorization: token <token>`, or the browser's login cookie plus the `X-XSRFToken` header on "
    "POST and DELETE. Errors are `{\"error\": <a sentence for a person>, \"reason\": <a short code>}`."
)


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    operation_id: str
    summary: str
    reply: type[BaseModel] | None  # None: any JSON object
    status: str = "200"
    errors: tuple[str, ...] = ("401", "403", "503")
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_param: tuple[str, str] | None = None  # (name, description)
    extra: dict[str, Any] = field(default_factory=dict)


SLICE = ("slice_id", "A lease id")
JOB = ("job_id", "A job id")
ENDPOINT = ("endpoint_id", "An endpoint id or name")
OPERATIONS = (
    Operation("/", "get", "info", "Who I am here, and which services are wired", s.Info),
    Operation("/devices", "get", "listDevices", "The inventory: nodes, devices, and what can be requested on each",
              s.Inventory, errors=("400", "401", "403", "503"), query=s.DevicesQuery),
    Operation("/slices", "get", "listSlices", "My slices (every user's with all=true, admins only)", s.Slices,
              errors=("400", "401", "403", "503"), query=s.EveryoneQuery),
    Operation("/slices", "post", "requestSlice",
              "Request a slice: granted at once, or 409 with the reason when it cannot be placed now", s.Lease,
              status="201", errors=("400", "401", "403", "409", "503"), body=s.SliceRequestBody),
    Operation("/slices/{slice_id}", "get", "getSlice", "One of my slices", s.Lease,
              errors=("401", "403", "404", "503"), path_param=SLICE),
    Operation("/slices/{slice_id}", "delete", "releaseSlice", "Release a slice", s.Lease,
              errors=("401", "403", "404", "409", "503"), path_param=SLICE),
    Operation("/slices/{slice_id}/renew", "post", "renewSlice", "Renew a slice's lease for another TTL", s.Lease,
              errors=("401", "403", "404", "409", "503"), path_param=SLICE),
    Operation("/jobs", "get", "listJobs", "My jobs (every user's with all=true, admins only)", s.Jobs,
              errors=("400", "401", "403", "503"), query=s.EveryoneQuery),
    Operation("/jobs", "post", "submitJob", "Submit a script or notebook under the Jupyter root as a job", s.Job,
              status="201", errors=("400", "401", "403", "409", "503"), body=s.JobRequestBody),
    Operation("/jobs/{job_id}", "get", "getJob", "One of my jobs", s.Job, errors=("401", "403", "404", "503"),
              path_param=JOB),
    Operation("/jobs/{job_id}/cancel", "post", "cancelJob", "Cancel a job", s.Job,
              errors=("401", "403", "404", "409", "503"), path_param=JOB),
    Operation("/jobs/{job_id}/logs", "get", "jobLogs",
              "A job's log from a byte offset; follow it by asking again from next_offset until done", s.LogChunk,
              errors=("400", "401", "403", "404", "503"), query=s.LogQuery, path_param=JOB),
    Operation("/profiles", "get", "listProfiles", "My profiles (every user's with all=true, admins only)", s.Profiles,
              errors=("400", "401", "403", "503"), query=s.EveryoneQuery),
    Operation("/profiles/{profile_id}/summary", "get", "profileSummary", "Where the time went in one profile",
              s.ProfileSummary, errors=("401", "403", "404", "503"), path_param=("profile_id", "A profile id")),
    Operation("/kernels", "get", "listKernels", "The kernel registry", s.Kernels),
    Operation("/kernels/results", "get", "kernelResults", "The last correctness and benchmark result of each kernel",
              s.KernelResults, errors=("400", "401", "403", "503"), query=s.KernelResultsQuery),
    Operation("/endpoints", "get", "listEndpoints", "My served models (every user's with all=true, admins only)",
              s.Endpoints, errors=("400", "401", "403", "503"), query=s.EveryoneQuery),
    Operation("/endpoints/{endpoint_id}", "get", "getEndpoint", "One of my endpoints", s.Endpoint,
              errors=("401", "403", "404", "503"), path_param=ENDPOINT),
    Operation("/endpoints/{endpoint_id}", "delete", "stopEndpoint", "Stop an endpoint (its URL no longer answers)",
              s.Endpoint, errors=("401", "403", "404", "503"), path_param=ENDPOINT),
    Operation("/endpoints/{endpoint_id}/infer", "post", "inferEndpoint",
              "A KServe v2 inference request to my endpoint (Jupyter authenticates; the endpoint's token is added)",
              s.InferReply, errors=("400", "401", "403", "404", "409", "413", "503"), path_param=ENDPOINT,
              extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array", "items": {"type": "object"}}},
                  "description": "A KServe v2 inference request; the endpoint validates it (its 4xx comes back as is)."}}}}}),
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = components[model.__name__]
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        prop.pop("default", None)
        if "anyOf" in prop:  # `str | None`: a query parameter is absent rather than null
            prop = next(branch for branch in prop["anyOf"] if branch.get("type") != "null")
        parameter = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.query is not None:
        out["parameters"] = _query_parameters(op.query, components)
    if op.body is not None:
        out["requestBody"] = {"required": True, **_json(_ref(op.body))}
    out.update(op.extra)
    reply = _ref(op.reply) if op.reply is not None else {"type": "object"}
    out["responses"] = {op.status: {"description": op.summary, **_json(reply)}}
    out["responses"].update({code: {"description": ERRORS[code], **_json(_ref(s.Error))} for code in op.errors})
    return out


def _drop_field_titles(node: Any) -> None:
    """pydantic titles every field after its name ("Device Keys"): noise in the document and in
    the TypeScript generated from it. The descriptions stay."""
    if isinstance(node, dict):
        for prop in (node.get("properties") or {}).values():
            prop.pop("title", None)
        for value in node.values():
            _drop_field_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_field_titles(value)


def build() -> dict[str, Any]:
    """The document: paths from `OPERATIONS`, components from the models' JSON schemas."""
    requests = {op.body for op in OPERATIONS if op.body} | {op.query for op in OPERATIONS if op.query}
    replies = {op.reply for op in OPERATIONS if op.reply} | {s.Error}
    models = sorted(requests | replies, key=lambda m: m.__name__)
    _, schema = models_json_schema(
        [(m, "validation" if m in requests else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = schema["$defs"]
    _drop_field_titles(components)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        item = paths.setdefault(op.path, {})
        if op.path_param is not None:
            name, description = op.path_param
            item["parameters"] = [{"name": name, "in": "path", "required": True, "description": description,
                                   "schema": {"type": "string", "pattern": ID_PATTERN}}]
        item[op.method] = _operation(op, components)
    for query in {op.query for op in OPERATIONS if op.query}:
        del components[query.__name__]  # stated as parameters, not as a body
    return {
        "openapi": "3.1.0",
        "info": {"title": "Workbench REST API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/workbench/api"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "`token <the Jupyter server's token>`"}},
            "schemas": dict(sorted(components.items())),
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if OPENAPI_PATH.read_text() == render() else "openapi.json is stale: run python -m workbench.jupyter.openapi")
    OPENAPI_PATH.write_text(render())
