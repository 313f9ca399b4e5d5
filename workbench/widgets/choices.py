"""A slice-request form's choices, from the core's offers (`wb.slices.offers()`).

Shared by the notebook form and the dashboard's form, so both offer exactly the kinds and MIG
profiles the core grants on the chosen kind of device (the rule lives in
`workbench.slices.offers`; nothing here re-derives it), and both turn the choice into the same
`wb.slices.request` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.slices.offers import KIND_LABELS, DeviceOffers


def device_choices(wb: Any) -> dict[str, DeviceOffers]:
    """label -> the offers of that kind of device, GPUs first (the order of `wb.slices.offers()`)."""
    return {group.label: group for group in wb.slices.offers()}


@dataclass(frozen=True)
class FormOptions:
    """What a form shows once a device is chosen: (label, value) pairs, and the defaults."""

    nodes: list[tuple[str, str]]
    kinds: list[tuple[str, str]]
    profiles: list[str]

    @property
    def profile(self) -> str | None:
        return self.profiles[0] if self.profiles else None


def form_options(group: DeviceOffers) -> FormOptions:
    return FormOptions(nodes=[("any node", ""), *((n, n) for n in group.nodes)],
                       kinds=[(KIND_LABELS[k], k) for k in group.kinds],
                       profiles=group.profiles)


@dataclass(frozen=True)
class SliceChoice:
    """A filled-in form: what kind of device, where, what kind of slice and how much."""

    device: DeviceOffers
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
        return wb.slices.request(self.spec(), node=self.node or None, models=self.device.models, priority=self.priority,
                                 wait=wait, timeout_s=timeout_s)
