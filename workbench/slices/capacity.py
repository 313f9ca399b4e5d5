"""The fleet as the allocator sees it, with nothing leased: devices, their indices, and the rules set in settings.

What changes only when the inventory or the settings do: the free capacity of an empty fleet (the
placement engine's `ClusterState`), which GPU models and MIG devices a request may use, the
placement policy and the quotas. Worked out once per service and read by every decision, so the
book (`book.Book`) that accounts for held leases never reads the inventory itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from workbench.config import Settings
from workbench.inventory.catalog import lookup
from workbench.inventory.devices import Device, Inventory
from workbench.slices.placement import DEFAULT_POLICY, FULL, ClusterState, Policy, Task, make_policy

if TYPE_CHECKING:
    from workbench.slices.request import Request

ModelKey = tuple[tuple[str, ...], int | None, str | None]


class Capacity:
    """The fleet's capacity and the allocation rules; the inventory is read when first needed."""

    def __init__(self, devices: Callable[[], Inventory], settings: Settings) -> None:
        self._devices = devices
        self.settings = settings
        self._inventory: Inventory | None = None
        self._state: ClusterState | None = None
        self._policies: dict[str, Policy] = {}
        self._allowed: dict[ModelKey, dict[str, Device]] = {}
        self.node_index: dict[str, int] = {}
        """Node name -> its row in the engine's state."""
        self.gpu_column: dict[str, int] = {}
        """GPU key -> its column in the engine's state."""

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            inventory = self._devices()
            self.node_index = {n.name: i for i, n in enumerate(inventory.nodes)}
            self.gpu_column = {d.key: j for n in inventory.nodes for j, d in enumerate(n.gpus)}
            self._inventory = inventory
        return self._inventory

    def base_state(self) -> ClusterState:
        """Free capacity with nothing leased. GPUs in MIG mode serve MIG profiles only."""
        if self._state is None:
            inv = self.inventory
            width = max([len(n.gpus) for n in inv.nodes] + [1])
            gpu = np.zeros((len(inv.nodes), width), dtype=np.int64)
            for i, node in enumerate(inv.nodes):
                for j, d in enumerate(node.gpus):
                    gpu[i, j] = 0 if d.mig else FULL
            models = [node.gpus[0].model if node.gpus else "cpu" for node in inv.nodes]
            self._state = ClusterState(
                [n.name for n in inv.nodes], models, [n.cpu_milli for n in inv.nodes], [n.memory_mib for n in inv.nodes], gpu
            )
        return self._state

    def cpu_memory_mib(self, cpu_milli: int, node: str | None) -> int:
        """Host memory of a CPU slice: the node's memory in proportion to its cores."""
        nodes = [n for n in self.inventory.nodes if node is None or n.name == node] or list(self.inventory.nodes)
        share = min(n.memory_mib * cpu_milli // max(n.cpu_milli, 1) for n in nodes)
        return int(share)

    def gpus(self) -> list[Device]:
        return [d for d in self.inventory.devices if d.kind == "gpu"]

    def allowed_models(self, req: Request) -> dict[str, Device]:
        """GPU models (non-MIG devices) that satisfy the model and memory constraints, one device each."""
        key = (req.models, req.min_memory_bytes, req.node)
        if key not in self._allowed:
            self._allowed[key] = self._find_models(req)
        return self._allowed[key]

    def _find_models(self, req: Request) -> dict[str, Device]:
        wanted = {lookup(m).name for m in req.models}
        out: dict[str, Device] = {}
        for d in self.gpus():
            if d.mig or (req.node and d.node != req.node):
                continue
            if wanted and lookup(d.model).name not in wanted and d.model not in req.models:
                continue
            if req.min_memory_bytes and (d.memory_bytes or 0) < req.min_memory_bytes:
                continue
            out.setdefault(d.model, d)
        return out

    def mig_devices(self, req: Request) -> list[Device]:
        """The GPUs in MIG mode that offer the requested profile within the request's constraints."""
        wanted = {lookup(m).name for m in req.models}
        out = []
        for d in self.gpus():
            profile = d.spec.mig_profile(req.spec.profile or "") if d.mig else None
            if profile is None or (wanted and d.spec.name not in wanted):
                continue
            if not req.min_memory_bytes or profile.memory_bytes >= req.min_memory_bytes:
                out.append(d)
        return out

    def policy(self, name: str | None, task: Task, workload: Sequence[Task]) -> Policy:
        """The placement policy for one decision. Fragmentation-aware policies measure against
        the requests currently held (plus this one): the service's own workload."""
        name = (name or self.settings.policy or DEFAULT_POLICY).lower()
        if name.startswith("fgd"):
            return make_policy(name, workload=[task, *workload])
        if name not in self._policies:
            self._policies[name] = make_policy(name)
        return self._policies[name]

    def quota(self, scope: str, name: str) -> dict[str, float]:
        """The limits set for `scope` ("user" or "project") `name`, or its scope's default (`user:*`)."""
        quotas = self.settings.quotas
        return dict(quotas.get(f"{scope}:{name}", quotas.get(f"{scope}:*", {})))
