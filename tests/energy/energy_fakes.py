"""Fakes at the seams the energy module exposes: an NVML driver and a controllable clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-aaaa"
    energy_mj: float = 5_000_000.0
    power_mw: float = 300_000.0
    util: float = 50.0
    has_energy_counter: bool = True
    mig_uuids: list[str] = field(default_factory=list)


class FakeNvml:
    """The pynvml functions the inventory and the meter call, answering from FakeGpu objects."""

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise RuntimeError(f"no GPU {uuid}")

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(total=80 * 1024**3, used=1024**3)

    def nvmlDeviceGetMigMode(self, h: FakeGpu) -> tuple[int, int]:
        return (0, 0)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=h.util)

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> float:
        self._count("power")
        return h.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> float:
        self._count("energy")
        if not h.has_energy_counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return h.energy_mj


