"""REST handlers: parse the request, call `Workbench`, serialize the answer. Nothing else.

Every handler is `@tornado.web.authenticated`; POST and DELETE go through Jupyter Server's XSRF
check (a browser sends the `_xsrf` cookie back as `X-XSRFToken`; a client with a token in the
`Authorization` header is exempt, as everywhere in Jupyter Server).

Identity: under JupyterHub, or with any identity provider that knows users, the caller is
`self.current_user.username`. With Jupyter Server's own token/password provider there is one
person, the one who started the server, whose user names are random per browser: the workbench
then acts for its configured user (`Settings.user`, itself `$JUPYTERHUB_USER` or the login name).

Errors are JSON `{"error": <a sentence for a person>, "reason": <a short code>}` with the status
of the `WorkbenchError` raised by the core (400, 403, 404, 409, 503); anything else is logged
and answered 500 without a traceback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import importlib.util
import json
import math
from http.client import responses
from pathlib import Path
from typing import Any, Callable

import orjson
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from workbench.errors import (
    BackendUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    WorkbenchError,
)
from workbench.jupyter.openapi import OPENAPI_PATH
from workbench.jupyter.schemas import (
    DevicesQuery,
    EveryoneQuery,
    JobRequestBody,
    KernelResultsQuery,
    LogQuery,
    M,
    Q,
    SliceRequestBody,
    parse_body,
    parse_query,
)
from workbench.slices.offers import DeviceOffers, device_offers, lease_label

ID_RE = r"([A-Za-z0-9_.:-]{1,80})"
_REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 503: "unavailable"}
# Jupyter Server's own token/password providers: one person, random per-browser user names.
_SINGLE_PERSON_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)


def to_json(obj: Any) -> Any:
    """The JSON form of what the core returns: `as_json()`, pydantic models, dataclasses, frames."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "as_json"):
        return to_json(obj.as_json())
    if hasattr(obj, "model_dump"):
        return to_json(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json(v) for v in obj]
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a pandas DataFrame
        return to_json(json.loads(obj.to_json(orient="records", date_format="iso")))
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_json({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if hasattr(obj, "item"):  # numpy scalars
        return to_json(obj.item())
    return str(obj)


def service_available(noun: str) -> bool:
    return importlib.util.find_spec(f"workbench.{noun}.service") is not None


def require_service(noun: str) -> None:
    if not service_available(noun):
        raise BackendUnavailable(
            f"{noun} are not available in this installation of the workbench (workbench.{noun}.service is missing)"
        )


class WorkbenchAPIHandler(APIHandler):
    """Base: identity, JSON in and out, and the error mapping."""

    @property
    def holder(self) -> Any:
        return self.settings["workbench_holder"]

    def update_api_activity(self) -> None:
        """Only what a person does counts as activity: the sidebar's polling (GET) must not keep
        an idle server alive, or JupyterHub's idle culler would never stop it."""
        if self.request.method != "GET":
            super().update_api_activity()

    @property
    def wb(self) -> Any:
        """The `Workbench` acting for the caller (the server's own, or a view for another user)."""
        return self.holder.for_user(self.acting_user)

    # -- identity ---------------------------------------------------------------------------
    @property
    def acting_user(self) -> str:
        """Who the workbench acts for in this request (see the module's docstring)."""
        if type(self.identity_provider) in _SINGLE_PERSON_PROVIDERS:
            return str(self.holder.get().user)
        return str(self.current_user.username)

    @property
    def acting_admin(self) -> bool:
        return bool(self.wb.is_admin(self.acting_user))

    def check_owner(self, thing: Any, what: str, ident: str) -> None:
        owner = getattr(thing, "owner", None)
        if owner is None and isinstance(thing, dict):
            owner = thing.get("owner")
        if owner is not None and owner != self.acting_user and not self.acting_admin:
            raise Forbidden(f"{what} {ident} belongs to {owner}, not to {self.acting_user}; only its owner or an admin may do that")

    def wants_all(self) -> bool:
        """`?all=true`: every user's things, for admins; anyone else asking gets 403."""
        wants = self.query(EveryoneQuery).all == "true"
        if wants and not self.acting_admin:
            raise Forbidden(f"{self.acting_user} is not an admin; only admins may list every user's slices and jobs")
        return wants

    # -- input ------------------------------------------------------------------------------
    def body(self, model: type[M]) -> M:
        """The request body validated against `model` (see `workbench.jupyter.schemas`)."""
        return parse_body(model, self.request.body or b"")

    def query(self, model: type[Q]) -> Q:
        """The query parameters validated against `model` (see `workbench.jupyter.schemas`)."""
        return parse_query(model, lambda name: self.get_query_argument(name, None))

    # -- output -----------------------------------------------------------------------------
    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call into the core off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.holder.executor, functools.partial(fn, *args, **kwargs))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(to_json(data)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, WorkbenchError):
            message = exc.message
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or responses.get(status_code, "error")
            if status_code == 403 and not self.current_user:
                # Tornado answers 403 to a request without credentials (and to its missing XSRF
                # token); HTTP's word for "who are you?" is 401, with the scheme to use.
                status_code = 401
                self.set_status(401)
                self.set_header("WWW-Authenticate", 'token realm="jupyter"')
                message = "not authenticated: send a Jupyter token (Authorization: token ...) or log in"
        else:
            message = "internal error in the workbench server extension; the server log has the details"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "reason": _REASONS.get(status_code, responses.get(status_code, "error"))}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, WorkbenchError):
            self.log.info("workbench: %s %s -> %s: %s", self.request.method, self.request.path, e.http_status, e)
            if not self._finished:
                self.send_error(e.http_status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class InfoHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        from workbench import __version__

        self.reply(
            {
                "user": self.acting_user,
                "admin": self.acting_admin,
                "version": __version__,
                "services": {noun: service_available(noun) for noun in ("slices", "jobs", "profiles", "kernels")},
                "dashboard_url": self.base_url + "workbench/",
            }
        )


class OpenAPIHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        doc = json.loads(OPENAPI_PATH.read_text())
        doc["servers"] = [{"url": self.base_url + "workbench/api"}]
        self.reply(doc)


# -- devices ----------------------------------------------------------------------------------
def device_json(device: Any, inventory: Any) -> dict[str, Any]:
    """A device with what a request form needs: its MIG geometry and what can be requested on it."""
    data = device.as_json()
    spec = device.spec
    data["mig_profiles"] = [
        {
            "name": p.name,
            "compute_slices": p.compute_slices,
            "memory_slices": p.memory_slices,
            "memory_bytes": p.memory_bytes,
            "max_count": p.max_count,
            "starts": list(p.starts),
        }
        for p in (spec.mig_profiles if device.kind == "gpu" else ())
    ]
    data["offers"] = [offer.model_dump(mode="json") for offer in device_offers(device, inventory)]
    data["peak_flops"] = dict(spec.peak_flops)
    data["memory_bandwidth_bps"] = spec.memory_bandwidth_bps
    return data


def inventory_json(inventory: Any, offers: list[DeviceOffers]) -> dict[str, Any]:
    return {
        "source": inventory.source,
        "gpu_count": inventory.gpu_count,
        "nodes": [
            {"name": n.name, "cpu_milli": n.cpu_milli, "memory_mib": n.memory_mib, "devices": [d.key for d in n.devices]}
            for n in inventory.nodes
        ],
        "devices": [device_json(d, inventory) for d in inventory.devices],
        "offers": [group.model_dump(mode="json") for group in offers],
    }


class DevicesHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        refresh = self.query(DevicesQuery).refresh == "true"
        inventory = await self.call(self.wb.devices, refresh=refresh)
        self.reply(inventory_json(inventory, await self.call(self.wb.slices.offers)))


# -- slices -----------------------------------------------------------------------------------
def lease_json(lease: Any) -> dict[str, Any]:
    data = to_json(lease)
    data["label"] = lease_label(lease)
    describe = getattr(lease, "describe", None)
    if callable(describe):
        data["description"] = describe()
    return data


class SlicesHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        require_service("slices")
        everyone = self.wants_all()
        leases = await self.call(self.wb.slices.list, owner=None if everyone else self.acting_user, all_users=everyone)
        self.reply({"slices": [lease_json(lease) for lease in leases]})

    @web.authenticated
    async def post(self) -> None:
        require_service("slices")
        body = self.body(SliceRequestBody)
        lease = await self.call(
            self.wb.slices.request, body.spec, owner=self.acting_user, project=body.project, priority=body.priority,
            models=body.models, wait=False,
        )
        self.reply(lease_json(lease), status=201)


class SliceHandler(WorkbenchAPIHandler):
    async def _owned(self, lease_id: str) -> Any:
        require_service("slices")
        lease = await self.call(self.wb.slices.get, lease_id)
        self.check_owner(lease, "slice", lease_id)
        return lease

    @web.authenticated
    async def get(self, lease_id: str) -> None:
        self.reply(lease_json(await self._owned(lease_id)))

    @web.authenticated
    async def delete(self, lease_id: str) -> None:
        await self._owned(lease_id)
        self.reply(lease_json(await self.call(self.wb.slices.release, lease_id)))


class SliceRenewHandler(SliceHandler):
    @web.authenticated
    async def post(self, lease_id: str) -> None:
        await self._owned(lease_id)
        self.reply(lease_json(await self.call(self.wb.slices.renew, lease_id)))


# -- jobs -------------------------------------------------------------------------------------
JOB_KINDS = {".py": "script", ".ipynb": "notebook"}


class JobsHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        require_service("jobs")
        everyone = self.wants_all()
        jobs = await self.call(self.wb.jobs.list, owner=None if everyone else self.acting_user, all_users=everyone)
        self.reply({"jobs": jobs})

    def _target(self, target: str) -> Path:
        if not target.strip():
            raise InvalidRequest('a job needs "target": the path of a .py script or an .ipynb notebook, relative to the Jupyter root')
        root = Path(self.settings["workbench_root_dir"]).resolve()
        shown = repr(target if len(target) <= 120 else target[:117] + "...")
        try:
            path = (root / target).resolve()
            if not path.is_relative_to(root):
                raise InvalidRequest(f"target {shown} is outside the Jupyter root folder {root}")
            if path.suffix not in JOB_KINDS:
                raise InvalidRequest(f"target {shown} is neither a .py script nor an .ipynb notebook")
            if not path.is_file():
                raise InvalidRequest(f"target {shown} does not exist under the Jupyter root folder")
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"target {shown} is not a usable path: {exc}") from None
        return path

    @web.authenticated
    async def post(self) -> None:
        require_service("jobs")
        body = self.body(JobRequestBody)
        path = self._target(body.target)
        options: dict[str, Any] = body.model_dump(exclude={"target", "timeout_s"}, exclude_none=True)
        if body.timeout_s is not None:
            options["timeout"] = body.timeout_s
        job = await self.call(self.wb.jobs.submit, str(path), owner=self.acting_user, cwd=str(path.parent), **options)
        self.reply(job, status=201)


class JobHandler(WorkbenchAPIHandler):
    async def _owned(self, job_id: str) -> Any:
        require_service("jobs")
        job = await self.call(self.wb.jobs.get, job_id)
        self.check_owner(job, "job", job_id)
        return job

    @web.authenticated
    async def get(self, job_id: str) -> None:
        self.reply(await self._owned(job_id))


class JobCancelHandler(JobHandler):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        await self._owned(job_id)
        self.reply(await self.call(self.wb.jobs.cancel, job_id, wait=False))


class JobLogsHandler(JobHandler):
    """`GET jobs/{id}/logs?offset=N`: the log from byte N, and the offset to ask for next (`wb.jobs.read_log`).

    A client follows a running job by asking again with `next_offset` until `done` is true.
    """

    @web.authenticated
    async def get(self, job_id: str) -> None:
        await self._owned(job_id)
        offset = self.query(LogQuery).offset
        chunk = await self.call(self.wb.jobs.read_log, job_id, offset)
        self.reply({"id": job_id, "state": chunk.state, "offset": offset, "next_offset": chunk.next_offset,
                    "text": chunk.text, "done": chunk.ended})


# -- profiles and kernels ---------------------------------------------------------------------
PROFILE_FIELDS = ("id", "name", "owner", "job_id", "device", "framework", "format", "created_at")


class ProfilesHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        require_service("profiles")
        everyone = self.wants_all()
        profiles = await self.call(self.wb.profiles.list, owner=None if everyone else self.acting_user)
        # the list stays light: a summary is one request per profile (profiles/{id}/summary)
        self.reply({"profiles": [{k: getattr(p, k, None) for k in PROFILE_FIELDS} for p in profiles]})


class ProfileSummaryHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self, profile_id: str) -> None:
        require_service("profiles")
        # by id only: the core also accepts a trace file path, which a REST caller must not name
        profile = await self.call(self.wb.profiles.get, profile_id)
        self.check_owner(profile, "profile", profile_id)
        summary = await self.call(profile.summary)
        self.reply({"id": profile_id, "name": profile.name, "summary": summary})


KERNEL_FIELDS = ("name", "backend", "dtypes", "framework_name", "source", "summary", "bound", "check_shapes", "bench_shapes")


class KernelsHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self) -> None:
        require_service("kernels")
        kernels = await self.call(self.wb.kernels.list)
        self.reply({"kernels": [{k: getattr(spec, k, None) for k in KERNEL_FIELDS} for spec in kernels]})


class KernelResultsHandler(WorkbenchAPIHandler):
    """`GET kernels/results?kernel=softmax&limit=50`: stored check and benchmark results, newest first."""

    @web.authenticated
    async def get(self) -> None:
        require_service("kernels")
        query = self.query(KernelResultsQuery)
        self.reply({"results": await self.call(self.wb.kernels.results, kernel=query.kernel, limit=query.limit)})


# -- endpoints --------------------------------------------------------------------------------
class EndpointsHandler(WorkbenchAPIHandler):
    """`GET endpoints`: my live endpoints with their requests/s and their URL through this server's proxy."""

    def endpoint_json(self, ep: Any, stats: dict[str, float] | None = None) -> dict[str, Any]:
        data = to_json(ep)
        data.pop("token", None)  # the bearer token stays with `wb.endpoints` and the CLI
        port = (ep.url or "").rsplit(":", 1)[-1]
        data["proxy_url"] = url_path_join(self.base_url, "proxy", port) + "/" if ep.live and port.isdigit() else None
        data["stats"] = stats or {}
        return data

    @web.authenticated
    async def get(self) -> None:
        require_service("endpoints")
        everyone = self.wants_all()
        endpoints = await self.call(self.wb.endpoints.list, all_users=everyone)
        mine = [ep for ep in endpoints if ep.owner == self.acting_user]
        stats = {ep.id: await self.call(self.wb.endpoints.stats, ep.id) for ep in mine}
        self.reply({"endpoints": [self.endpoint_json(ep, stats.get(ep.id)) for ep in endpoints]})


class EndpointHandler(EndpointsHandler):
    @web.authenticated
    async def get(self, endpoint_id: str) -> None:
        require_service("endpoints")
        ep = await self.call(self.wb.endpoints.get, endpoint_id)
        self.reply(self.endpoint_json(ep, await self.call(self.wb.endpoints.stats, ep.id)))

    @web.authenticated
    async def delete(self, endpoint_id: str) -> None:
        require_service("endpoints")
        ep = await self.call(self.wb.endpoints.get, endpoint_id)
        self.reply(self.endpoint_json(await self.call(self.wb.endpoints.stop, ep.id)))


class EndpointInferHandler(WorkbenchAPIHandler):
    """`POST endpoints/{id}/infer`: a KServe v2 request to my endpoint, authenticated by Jupyter
    (the handler adds the endpoint's bearer token); the endpoint's answer, 4xx included."""

    @web.authenticated
    async def post(self, endpoint_id: str) -> None:
        require_service("endpoints")
        ep = await self.call(self.wb.endpoints.get, endpoint_id)
        status, body = await self.call(self.wb.endpoints.infer_raw, ep.id, self.request.body or b"")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class NotFoundHandler(WorkbenchAPIHandler):
    @web.authenticated
    async def get(self, *args: Any) -> None:
        raise NotFound(
            f"no such workbench API route: {self.request.method} {self.request.path}; "
            f"see {self.base_url}workbench/api/openapi.json"
        )

    post = put = patch = delete = get


def route_table() -> list[tuple[str, type[web.RequestHandler]]]:
    """Patterns relative to `{base_url}workbench/api/`, most specific first."""
    return [
        (r"/?", InfoHandler),
        (r"/openapi\.json", OpenAPIHandler),
        (r"/devices", DevicesHandler),
        (r"/slices", SlicesHandler),
        (rf"/slices/{ID_RE}", SliceHandler),
        (rf"/slices/{ID_RE}/renew", SliceRenewHandler),
        (r"/jobs", JobsHandler),
        (rf"/jobs/{ID_RE}", JobHandler),
        (rf"/jobs/{ID_RE}/cancel", JobCancelHandler),
        (rf"/jobs/{ID_RE}/logs", JobLogsHandler),
        (r"/profiles", ProfilesHandler),
        (rf"/profiles/{ID_RE}/summary", ProfileSummaryHandler),
        (r"/kernels", KernelsHandler),
        (r"/kernels/results", KernelResultsHandler),
        (r"/endpoints", EndpointsHandler),
        (rf"/endpoints/{ID_RE}", EndpointHandler),
        (rf"/endpoints/{ID_RE}/infer", EndpointInferHandler),
        (r"/.*", NotFoundHandler),
    ]
