"""`Endpoint`: a model served from a slice, as the store records it."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.records import ServiceRecord, html_card, html_table
from workbench.units import as_utc

if TYPE_CHECKING:
    from workbench.endpoints.service import EndpointService
    from workbench.store.models.endpoints import EndpointRow

LIVE_STATES = ("starting", "ready")


@dataclass
class Endpoint(ServiceRecord):
    """`url` is the KServe v2 root (`{url}/v2/models/{name}/infer`); `token` is the bearer token
    requests need (None: none needed). `last_bench` holds the last `wb.endpoints.bench` result."""

    id: str
    name: str
    owner: str
    lease_id: str
    state: str  # starting | ready | stopped | failed
    url: str | None
    token: str | None
    model_path: str
    node: str | None
    pid: int | None
    config: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    reason: str | None
    created_at: dt.datetime | None
    ready_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    last_bench: dict[str, Any] = field(default_factory=dict)
    _service: EndpointService | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: EndpointRow, service: EndpointService | None = None) -> Endpoint:
        signature = row.signature or {}
        return cls(
            id=row.id, name=row.name, owner=row.owner, lease_id=row.lease_id, state=row.state, url=row.url,
            token=row.token, model_path=row.model_path, node=row.node, pid=row.pid, config=dict(row.config or {}),
            inputs=list(signature.get("inputs", [])), outputs=list(signature.get("outputs", [])), reason=row.reason,
            created_at=as_utc(row.created_at), ready_at=as_utc(row.ready_at), stopped_at=as_utc(row.stopped_at),
            last_bench=dict(row.bench or {}), _service=service,
        )

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def infer_url(self) -> str:
        return f"{self.url}/v2/models/{self.name}/infer"

    def deploy_json(self) -> dict[str, Any]:
        """What `workbench endpoints deploy --json` prints (the contract: exactly these keys)."""
        return {"id": self.id, "name": self.name, "url": self.url, "state": self.state, "token": self.token}

    # -- verbs --------------------------------------------------------------------------------
    def infer(self, *inputs: Any, **named: Any) -> Any:
        """Query the endpoint: arrays in the model's input order (or by name); numpy arrays out."""
        return self._svc().infer(self.id, *inputs, **named)

    def bench(self, **kwargs: Any) -> Any:
        """Measure latency and throughput (see `wb.endpoints.bench`)."""
        return self._svc().bench(self.id, **kwargs)

    def stop(self) -> Endpoint:
        return self._update(self._svc().stop(self.id))

    # -- display ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        extra = f" reason={self.reason!r}" if self.reason and not self.live else ""
        return f"<Endpoint {self.id} {self.name!r} {self.state} url={self.url} slice={self.lease_id}{extra}>"

    def _repr_html_(self) -> str:
        colors = {"ready": "#2e7d32", "starting": "#1565c0", "failed": "#c62828"}
        signature = lambda ts: ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in ts)  # noqa: E731
        rows = [
            ("URL", f"{self.url}/v2/models/{self.name}" if self.url else "–"),
            ("slice", self.lease_id),
            ("inputs", signature(self.inputs)),
            ("outputs", signature(self.outputs)),
            ("batching", f"max_batch_size={self.config.get('max_batch_size')}, max_wait_ms={self.config.get('max_wait_ms')}"),
            ("provider", ", ".join(self.config.get("providers_used") or ["–"])),
        ]
        if self.reason:
            rows.append(("reason", self.reason))
        return html_card("workbench-endpoint", f"Endpoint {self.name}", self.state, colors.get(self.state, "#616161"),
                         rows, subtitle=html.escape(self.id))


class EndpointList(list):  # type: ignore[type-arg]
    """A list of endpoints that shows as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = [(e.id, e.name, e.owner, e.state, e.url or "", e.lease_id) for e in self]
        return html_table("workbench-endpoints", ("id", "name", "owner", "state", "URL", "slice"), rows, "no endpoints")
