"""What can be requested on each device of a fleet, and what a held slice is called: one copy.

Every face (the JupyterLab sidebar through REST `GET devices`, the notebook form, the dashboard's
form) shows these offers instead of deriving its own, so a face can never offer what the core
refuses. The rule is the one `SliceService` enforces when it validates a request:

- a GPU in MIG mode gives only MIG instances, of the profiles its model's catalog entry lists;
- a GPU not in MIG mode gives shares (fractions) and whole GPUs, never MIG instances;
- CPU cores come from a node's CPU capacity (every node has one, GPU or not).

Pure functions of an `Inventory`: no database, no clock, so they are cheap to call per page view
and easy to test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from workbench.inventory.catalog import MIG_COMPUTE_SLICES
from workbench.inventory.devices import Device, Inventory
from workbench.slices.types import SliceKind

if TYPE_CHECKING:
    from workbench.slices.lease import Lease

KIND_LABELS: dict[SliceKind, str] = {"mig": "MIG instance", "fraction": "Shared fraction", "whole": "Whole GPU", "cpu": "CPU"}
FRACTIONS = (0.25, 0.5)  # the shares a list offers; a form with a slider may ask for any share
CPU_COUNTS = (1, 2, 4, 8)  # core counts a list offers, up to the most one node has


class Offer(BaseModel):
    """One thing a user may request: `spec` is what `wb.slices.request` (and REST `POST slices`) takes."""

    model_config = ConfigDict(frozen=True)

    kind: SliceKind
    spec: str
    label: str


class DeviceOffers(BaseModel):
    """The offers of one kind of device (a GPU model in or out of MIG mode, or the CPU), with
    the devices and nodes that have it. A request for one of these offers names `models` (the
    GPU model) so that it lands on this kind of device, and may name one of `nodes`."""

    model_config = ConfigDict(frozen=True)

    label: str
    device_kind: Literal["gpu", "cpu"]
    model: str
    mig: bool
    memory_bytes: int | None
    cores: int | None
    devices: tuple[str, ...]
    nodes: tuple[str, ...]
    offers: tuple[Offer, ...]

    @property
    def kinds(self) -> list[SliceKind]:
        """The slice kinds offered, in the order of `offers`."""
        return list(dict.fromkeys(offer.kind for offer in self.offers))

    @property
    def profiles(self) -> list[str]:
        """The MIG profiles offered (empty for a GPU not in MIG mode, and for the CPU)."""
        return [offer.spec for offer in self.offers if offer.kind == "mig"]

    @property
    def models(self) -> list[str] | None:
        """What `wb.slices.request(models=...)` takes to land on this kind of device."""
        return [self.model] if self.device_kind == "gpu" else None


def gpu_offers(device: Device) -> tuple[Offer, ...]:
    """What one GPU gives: its model's MIG profiles in MIG mode, else shares and the whole GPU."""
    if device.kind != "gpu":
        return ()
    if device.mig:
        return tuple(
            Offer(kind="mig", spec=p.name,
                  label=f"MIG {p.name} · {p.compute_slices}/{MIG_COMPUTE_SLICES} compute · {_gib(p.memory_bytes)}")
            for p in device.spec.mig_profiles
        )
    shares = tuple(Offer(kind="fraction", spec=f"{share:g}", label=f"{share:g} of a GPU (shared)") for share in FRACTIONS)
    return (*shares, Offer(kind="whole", spec="gpu", label="Whole GPU"))


def cpu_offers(most_cores: int) -> tuple[Offer, ...]:
    """CPU slices of 1, 2, 4, 8 cores, as many as fit on the largest node (one core at least)."""
    counts = [n for n in CPU_COUNTS if n <= most_cores] or [1]
    return tuple(Offer(kind="cpu", spec=f"cpu:{n}", label=f"{n} CPU core{'s' if n > 1 else ''}") for n in counts)


def device_offers(device: Device, inventory: Inventory) -> tuple[Offer, ...]:
    """What can be requested on this one device (REST gives each device of `GET devices` these)."""
    if device.kind == "cpu":
        node = inventory.node(device.node)
        return cpu_offers(node.cpu_milli // 1000)
    return gpu_offers(device)


def _gib(size_bytes: int) -> str:
    return f"{size_bytes / 2**30:.0f} GiB"


def _group_label(device: Device) -> str:
    size = f" ({_gib(device.memory_bytes)})" if device.memory_bytes else ""
    return f"{device.model}{size}{' · MIG' if device.mig else ''}"


def fleet_offers(inventory: Inventory) -> list[DeviceOffers]:
    """Every kind of device in the fleet with what can be requested on it: GPUs first (one group
    per model and MIG mode), then the CPU (every node has CPU cores, even where the inventory
    lists no CPU device, as in a declared fleet)."""
    groups: dict[tuple[str, bool], list[Device]] = {}
    for device in inventory.devices:
        if device.kind == "gpu":
            groups.setdefault((device.model, device.mig), []).append(device)
    out = []
    for (model, mig), devices in groups.items():
        first = devices[0]
        out.append(DeviceOffers(
            label=_group_label(first), device_kind="gpu", model=model, mig=mig, memory_bytes=first.memory_bytes,
            cores=None, devices=tuple(d.key for d in devices), nodes=tuple(dict.fromkeys(d.node for d in devices)),
            offers=gpu_offers(first),
        ))
    if inventory.nodes:
        most_cores = max(node.cpu_milli for node in inventory.nodes) // 1000
        cpus = [d for d in inventory.devices if d.kind == "cpu"]
        out.append(DeviceOffers(
            label=f"CPU ({most_cores} cores)", device_kind="cpu", model=cpus[0].model if cpus else "CPU", mig=False,
            memory_bytes=None, cores=most_cores, devices=tuple(d.key for d in cpus),
            nodes=tuple(node.name for node in inventory.nodes), offers=cpu_offers(most_cores),
        ))
    return out


def slice_label(kind: str, *, profile: str | None = None, gpu_milli: int = 0, cpu_milli: int = 0, gpus: int = 1) -> str:
    """What a held (or queued) slice is called in every face: `MIG 1g.10gb`, `0.25 GPU`,
    `2 whole GPUs`, `CPU ×2`."""
    if kind == "mig" and profile:
        return f"MIG {profile}"
    if kind == "cpu":
        return f"CPU ×{(cpu_milli or 1000) / 1000:g}"
    if kind == "fraction":
        return f"{gpu_milli / 1000:g} GPU"
    if kind == "whole":
        return f"{gpus} whole GPU{'s' if gpus > 1 else ''}"
    return kind


def lease_label(lease: Lease) -> str:
    """`slice_label` of a lease (queued or held)."""
    return slice_label(lease.kind, profile=lease.profile, gpu_milli=lease.gpu_milli, cpu_milli=lease.cpu_milli,
                       gpus=len(lease.device_keys) or 1)
