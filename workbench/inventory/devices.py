"""What the inventory hands out: nodes and their devices."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from workbench.inventory.catalog import DeviceSpec, lookup


class MigInstance(BaseModel):
    """A MIG instance that exists on a GPU (discovered) or is declared in a fleet file."""

    model_config = ConfigDict(frozen=True)

    profile: str
    start: int
    uuid: str | None = None


class Device(BaseModel):
    """One accelerator, or the CPU where there is none.

    `key` ("node/index" for GPUs, "node/cpu" for the CPU) is how slices and the store refer to
    a device: GPU UUIDs exist only on real hardware.
    """

    model_config = ConfigDict(frozen=True)

    node: str
    index: int
    kind: Literal["gpu", "cpu"]
    model: str
    memory_bytes: int | None
    mig: bool = False
    mig_capable: bool = False
    uuid: str | None = None
    cores: int | None = None
    mig_instances: tuple[MigInstance, ...] = ()
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    power_w: float | None = None
    source: Literal["nvml", "cpu", "fleet"] = "fleet"

    @property
    def key(self) -> str:
        return f"{self.node}/{'cpu' if self.kind == 'cpu' else self.index}"

    @property
    def spec(self) -> DeviceSpec:
        return lookup(self.model)

    def as_json(self) -> dict[str, object]:
        data = self.model_dump(mode="json")
        data["key"] = self.key
        return data


class Node(BaseModel):
    """A machine: its CPU and memory capacity (used by placement) and its devices."""

    model_config = ConfigDict(frozen=True)

    name: str
    cpu_milli: int
    memory_mib: int
    devices: tuple[Device, ...]

    @property
    def gpus(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.kind == "gpu")


class Inventory(BaseModel):
    """The nodes the workbench can place work on, and where that knowledge came from."""

    model_config = ConfigDict(frozen=True)

    source: str
    nodes: tuple[Node, ...]

    @property
    def devices(self) -> list[Device]:
        return [d for node in self.nodes for d in node.devices]

    @property
    def gpu_count(self) -> int:
        return sum(len(node.gpus) for node in self.nodes)

    def device(self, key: str) -> Device:
        from workbench.errors import NotFound

        for d in self.devices:
            if d.key == key or (d.uuid is not None and d.uuid == key):
                return d
        raise NotFound(f"no device {key!r} in the inventory ({self.source}); devices are named node/index")

    def node(self, name: str) -> Node:
        from workbench.errors import NotFound

        for n in self.nodes:
            if n.name == name:
                return n
        raise NotFound(f"no node {name!r} in the inventory ({self.source})")

    def __repr__(self) -> str:
        gpus = self.gpu_count
        what = f"{gpus} GPUs" if gpus else "CPU only"
        return f"<Inventory {self.source}: {len(self.nodes)} nodes, {what}>"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from workbench.inventory.render import inventory_html

        return inventory_html(self)
