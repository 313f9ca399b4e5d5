"""What a slice-request form may offer for a device, from the inventory and the device catalog.

Shared by the notebook form and the dashboard's form, so both offer exactly the kinds and MIG
profiles the chosen device allows, and both turn the choice into the same `wb.slices.request`
call. No placement logic here: the allocator decides; the form only avoids offering nonsense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KIND_LABELS = {"mig": "MIG instance", "fraction": "Shared fraction", "whole": "Whole GPU", "cpu": "CPU"}


def device_label(device: Any) -> str:
    """What a form offers: a kind of device (the allocator picks which one of that kind)."""
    if device.kind == "cpu":
        return f"CPU ({device.cores or '?'} cores)"
    return f"{device.model}{' (MIG)' if device.mig else ''}"


def device_choices(inventory: Any) -> dict[str, tuple[Any, list[str]]]:
    """label -> (a representative device, the nodes that have one), GPUs first."""
    groups: dict[str, tuple[Any, list[str]]] = {}
    for device in sorted(inventory.devices, key=lambda d: d.kind == "cpu"):
        label = device_label(device)
        first, nodes = groups.setdefault(label, (device, []))
        if device.node not in nodes:
            nodes.append(device.node)
    return groups


def kinds_for(device: Any) -> list[str]:
    """Slice kinds a device can give: a GPU in MIG mode only its instances; others fractions or whole."""
    if device.kind == "cpu":
        return ["cpu"]
    if device.mig:
        return ["mig"]
    return ["fraction", "whole"]


def mig_profiles_for(device: Any) -> list[str]:
    """MIG profile names the catalog lists for this GPU model (empty when not in MIG mode)."""
    if device.kind != "gpu" or not device.mig:
        return []
    return [p.name for p in device.spec.mig_profiles]


@dataclass(frozen=True)
class FormOptions:
    """What a form shows once a device is chosen: (label, value) pairs, and the defaults."""

    nodes: list[tuple[str, str]]
    kinds: list[tuple[str, str]]
    profiles: list[str]

    @property
    def profile(self) -> str | None:
        return self.profiles[0] if self.profiles else None


def form_options(device: Any, nodes: list[str]) -> FormOptions:
    return FormOptions(nodes=[("any node", ""), *((n, n) for n in nodes)],
                       kinds=[(KIND_LABELS[k], k) for k in kinds_for(device)],
                       profiles=mig_profiles_for(device))


@dataclass(frozen=True)
class SliceChoice:
    """A filled-in form: what kind of device, where, what kind of slice and how much."""

    device: Any
    kind: str
    profile: str | None = None
    fraction: float = 0.25
    cpus: int = 1
    priority: int = 0
    node: str | None = None

    def spec(self) -> str | float:
        """The slice spec string the facade parses (`"cpu:2"`, `"1g.10gb"`, `0.25`, `"gpu"`)."""
        if self.kind == "cpu":
            return f"cpu:{self.cpus}"
        if self.kind == "mig":
            return self.profile or ""
        if self.kind == "fraction":
            return float(self.fraction)
        return "gpu"

    def request(self, wb: Any, *, wait: bool = True, timeout_s: float | None = None) -> Any:
        """Ask the allocator (blocking while queued when `wait`); refusals raise with their reason.

        Faces call this off their event loop (a thread) and show the queued lease meanwhile.
        """
        models = [self.device.model] if self.device.kind == "gpu" else None
        return wb.slices.request(self.spec(), node=self.node or None, models=models, priority=self.priority,
                                 wait=wait, timeout_s=timeout_s)
