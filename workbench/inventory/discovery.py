"""Discover this machine's accelerators: NVIDIA GPUs through NVML, else the CPU.

NVML is the seam: `discover(nvml=...)` takes any object with pynvml's function names, so tests
can hand in a fake driver's answers while the logic stays real.
"""

from __future__ import annotations

import functools
import os
import socket
from types import ModuleType
from typing import Any

import psutil

from workbench.inventory.catalog import lookup
from workbench.inventory.devices import Device, Inventory, MigInstance, Node


def cpu_device(node: str | None = None) -> Device:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Device(
        node=node or socket.gethostname(),
        index=0,
        kind="cpu",
        model=_cpu_model(),
        memory_bytes=psutil.virtual_memory().total,
        cores=cores,
        source="cpu",
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


@functools.cache
def load_nvml() -> ModuleType | None:
    """pynvml, initialized, or None where there is no NVIDIA driver. Once per process: the inventory,
    the energy meter and the kernel harness all ask."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no library: a machine without NVIDIA GPUs
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_instances(nvml: Any, handle: Any, model: str) -> tuple[MigInstance, ...]:
    spec = lookup(model)
    found: list[MigInstance] = []
    try:
        count = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
        return ()
    for i in range(count):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
            continue
        uuid = _text(nvml.nvmlDeviceGetUUID(mig))
        memory = nvml.nvmlDeviceGetMemoryInfo(mig).total
        gi = nvml.nvmlDeviceGetGpuInstanceId(mig)
        start = 0
        try:
            info = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceGetGpuInstanceById(handle, gi))
            start = int(info.placement.start)
        except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
            pass
        profile = _profile_for_memory(spec, memory)
        found.append(MigInstance(profile=profile, start=start, uuid=uuid))
    return tuple(found)


def _profile_for_memory(spec: Any, memory_bytes: int) -> str:
    best = None
    for p in spec.mig_profiles:
        if p.media_extensions:
            continue
        if best is None or abs(p.memory_bytes - memory_bytes) < abs(best.memory_bytes - memory_bytes):
            best = p
    return best.name if best else f"{memory_bytes // 1024**3}gb"


def nvml_devices(nvml: Any, node: str) -> list[Device]:
    devices: list[Device] = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        model = _text(nvml.nvmlDeviceGetName(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        mig_on = False
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(handle)
            mig_on = bool(current)
        except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
            pass
        util = power = None
        try:
            util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
            pass
        try:
            power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake) whose errors share no type; an unanswered query is skipped
            pass
        devices.append(
            Device(
                node=node,
                index=index,
                kind="gpu",
                model=model,
                memory_bytes=int(memory.total),
                memory_used_bytes=int(memory.used),
                mig=mig_on,
                mig_capable=lookup(model).mig_capable,
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                mig_instances=_mig_instances(nvml, handle, model) if mig_on else (),
                utilization_pct=util,
                power_w=power,
                source="nvml",
            )
        )
    return devices


def discover(nvml: Any | None = None) -> Inventory:
    """This machine: its NVIDIA GPUs when a driver answers, and always its CPU as a device.

    The CPU is listed even beside GPUs so CPU slices stay available for data loading and tests.
    """
    node = socket.gethostname()
    driver = nvml if nvml is not None else load_nvml()
    gpus = nvml_devices(driver, node) if driver is not None else []
    cpu = cpu_device(node)
    cpu_milli = (cpu.cores or 1) * 1000
    memory_mib = (cpu.memory_bytes or 0) // 1024**2
    return Inventory(source="nvml" if gpus else "local CPU", nodes=(Node(name=node, cpu_milli=cpu_milli, memory_mib=memory_mib, devices=(*gpus, cpu)),))
