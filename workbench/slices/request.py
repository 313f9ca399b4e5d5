"""A slice request: what was asked (`Request`, stored in the lease row), and whether this fleet can ever grant it.

`validate` runs before anything is written or locked: a request no device of this fleet can
ever meet (`1g.10gb` where no GPU is in MIG mode, `gpu:9` where nodes have 8) is refused with a
message that says what the fleet offers, instead of waiting in the queue forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from collections.abc import Sequence

from workbench.errors import InvalidRequest
from workbench.inventory.devices import Device
from workbench.slices.capacity import Capacity
from workbench.slices.placement import FULL, Task, make_policy
from workbench.slices.spec import SliceSpec, parse_spec
from workbench.units import parse_size_bytes

MIB = 1024**2


@dataclass
class Request:
    """A request as stored in a lease row's `request` column, parsed."""

    spec: SliceSpec
    models: tuple[str, ...] = ()
    min_memory_bytes: int | None = None
    node: str | None = None
    policy: str | None = None
    cpu_milli: int = 0
    host_memory_mib: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        return cls(
            spec=parse_spec(data["spec"]), models=tuple(data.get("models") or ()),
            min_memory_bytes=data.get("min_memory_bytes"), node=data.get("node"), policy=data.get("policy"),
            cpu_milli=int(data.get("cpu_milli") or 0), host_memory_mib=int(data.get("host_memory_mib") or 0),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.text, "models": list(self.models), "min_memory_bytes": self.min_memory_bytes,
            "node": self.node, "policy": self.policy, "cpu_milli": self.cpu_milli, "host_memory_mib": self.host_memory_mib,
        }

    @property
    def gpus(self) -> float:
        """GPU-equivalents this request takes (for quotas), before placement."""
        if self.spec.kind == "whole":
            return float(self.spec.gpu_count)
        if self.spec.kind == "fraction":
            return self.spec.gpu_milli / FULL if self.spec.gpu_milli else 0.0
        if self.spec.kind == "mig" and self.spec.profile:
            return round(int(self.spec.profile.split("g.")[0]) / 7, 3)  # compute slices of 7
        return 0.0

    def tasks(self, capacity: Capacity) -> list[tuple[Task, Device | None]]:
        """Engine tasks to try, in order (one per GPU model for memory-sized fractions). They depend
        on the request and the inventory only, so they are worked out once, outside the lock."""
        cached = self.__dict__.get("_tasks")
        if cached is None:
            cached = self.__dict__["_tasks"] = self._tasks_for(capacity)
        return cached

    def _tasks_for(self, capacity: Capacity) -> list[tuple[Task, Device | None]]:
        if self.spec.kind == "cpu":
            node_mib = capacity.cpu_memory_mib(self.spec.cpu_milli, self.node)
            mem = self.host_memory_mib or node_mib
            return [(Task("request", self.spec.cpu_milli, mem), None)]
        models = capacity.allowed_models(self)
        if self.spec.kind == "whole":
            return [(Task("request", self.cpu_milli, self.host_memory_mib, self.spec.gpu_count, FULL, tuple(models)), None)]
        out: list[tuple[Task, Device | None]] = []
        if self.spec.gpu_memory_bytes:
            for model, device in sorted(models.items(), key=lambda kv: kv[1].memory_bytes or 0):
                milli = math.ceil(self.spec.gpu_memory_bytes * FULL / (device.memory_bytes or 1))
                if milli < FULL:
                    out.append((Task("request", self.cpu_milli, self.host_memory_mib, 1, milli, (model,)), device))
            return out
        return [(Task("request", self.cpu_milli, self.host_memory_mib, 1, self.spec.gpu_milli, tuple(models)), None)]


def make_request(
    spec: str | float,
    *,
    models: Sequence[str] | str | None = None,
    min_memory_bytes: int | str | None = None,
    node: str | None = None,
    policy: str | None = None,
    cpu_cores: float | None = None,
    memory_bytes: int | str | None = None,
) -> Request:
    """The request a caller's arguments describe (see `SliceService.request`), each argument
    parsed; `InvalidRequest` names the one that is not valid."""
    parsed = parse_spec(spec)
    host_mib = 0
    if memory_bytes is not None:
        host_mib = math.ceil(parse_size_bytes(memory_bytes, "memory_bytes") / MIB)
    if isinstance(min_memory_bytes, (str, int)):
        min_memory_bytes = parse_size_bytes(min_memory_bytes, "min_memory_bytes")
    if isinstance(models, str):
        models = [models]
    if policy is not None:
        make_policy(policy)  # unknown names fail now, with the valid ones
    cpu_milli = parsed.cpu_milli if parsed.kind == "cpu" else round((cpu_cores or 0) * 1000)
    return Request(parsed, tuple(models or ()), min_memory_bytes, node, policy, cpu_milli, host_mib)


def validate(req: Request, capacity: Capacity) -> None:
    """Refuse (`InvalidRequest`, saying why and what is valid here) a request this fleet can never grant."""
    inv = capacity.inventory
    kind = req.spec.kind
    if req.node is not None and req.node not in capacity.node_index:
        raise InvalidRequest(f"no node {req.node!r}; nodes: {', '.join(n.name for n in inv.nodes[:20])}")
    gpus = capacity.gpus()
    if kind == "cpu":
        cap = max(n.cpu_milli for n in inv.nodes if req.node in (None, n.name))
        if req.spec.cpu_milli > cap:
            raise InvalidRequest(f"{req.spec.text}: asks for {req.spec.cpu_milli / 1000:g} CPU cores; the most on one node is {cap / 1000:g}")
        return
    if not gpus:
        raise InvalidRequest(f"{req.spec.text}: this fleet ({inv.source}) has no GPU; valid kinds here: cpu (e.g. \"cpu\" or \"cpu:2\")")
    if kind == "mig":
        mig_models = sorted({d.spec.name for d in gpus if d.mig})
        if not mig_models:
            capable = sorted({d.model for d in gpus if d.mig_capable})
            present = sorted({d.model for d in gpus})
            if capable:
                raise InvalidRequest(
                    f"{req.spec.profile}: the GPUs here ({', '.join(capable)}) are MIG-capable but MIG mode is off; "
                    "the workbench never changes a live GPU's mode; valid kinds here: whole, fraction"
                )
            raise InvalidRequest(
                f"{req.spec.profile} is not a MIG profile of {', '.join(present)} (no MIG); valid kinds here: whole, fraction"
            )
        if not capacity.mig_devices(Request(req.spec)):
            valid = sorted({p.name for d in gpus if d.mig for p in d.spec.mig_profiles})
            raise InvalidRequest(
                f"{req.spec.profile!r} is not a MIG profile of {', '.join(mig_models)}; valid: {', '.join(valid)}"
            )
        if not capacity.mig_devices(req):
            raise InvalidRequest(f"{req.spec.profile}: no MIG GPU matches the constraints (models={list(req.models)}, min_memory_bytes={req.min_memory_bytes})")
        return
    models = capacity.allowed_models(req)
    if not models:
        plain = sorted({d.model for d in gpus if not d.mig})
        if not plain:
            raise InvalidRequest(
                f"{req.spec.text}: every GPU here is in MIG mode ({', '.join(sorted({d.model for d in gpus}))}); "
                "ask for a MIG profile such as " + ", ".join(p.name for p in gpus[0].spec.mig_profiles[:3])
            )
        raise InvalidRequest(
            f"{req.spec.text}: no GPU matches models={list(req.models)} min_memory_bytes={req.min_memory_bytes}; "
            f"GPU models here: {', '.join(plain)}"
        )
    if kind == "whole":
        most = max(sum(1 for d in n.gpus if d.model in models) for n in inv.nodes)
        if req.spec.gpu_count > most:
            raise InvalidRequest(f"{req.spec.text}: asks for {req.spec.gpu_count} GPUs on one node; the most any node has is {most}")
    if kind == "fraction" and req.spec.gpu_memory_bytes and not req.tasks(capacity):
        largest = max(models.values(), key=lambda d: d.memory_bytes or 0)
        raise InvalidRequest(
            f"{req.spec.text} of GPU memory is not less than a whole GPU here (largest: {largest.model}, "
            f"{(largest.memory_bytes or 0) / 1024**3:.0f} GiB); ask for \"gpu\" for a whole one"
        )
