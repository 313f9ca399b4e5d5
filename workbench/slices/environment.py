"""The environment a slice's processes get: what makes a framework see only the slice.

A lease's `env` is written when it is granted and read by whoever starts the slice's processes
(the jobs' Dask workers, an endpoint's server, a notebook): `CUDA_VISIBLE_DEVICES` for the GPUs
or MIG instance, a memory fraction for JAX/XLA on a share of a GPU, thread counts for CPU cores.
Frameworks read these at import, so they must be set before the process imports one.
"""

from __future__ import annotations

import math

from workbench.inventory.devices import Inventory
from workbench.slices.book import Placement
from workbench.slices.placement import FULL
from workbench.slices.types import SliceKind


def slice_env(lease_id: str, kind: SliceKind | str, p: Placement, inventory: Inventory) -> dict[str, str]:
    """The environment of lease `lease_id` of `kind`, placed at `p`."""
    env = {"WORKBENCH_SLICE_ID": lease_id, "WORKBENCH_SLICE_KIND": kind}
    if kind == "cpu":
        cores = p.cpu_milli / 1000
        threads = str(max(1, math.floor(cores)))
        env.update(
            CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
            OPENBLAS_NUM_THREADS=threads, WORKBENCH_SLICE_CPU_CORES=f"{cores:g}", JAX_PLATFORMS="cpu",
        )
        return env
    devices = [inventory.device(k) for k in p.device_keys]
    if kind == "mig":
        device = devices[0]
        instance = next((i for i in device.mig_instances if i.profile == p.profile and i.start == p.mig_start), None)
        env["CUDA_VISIBLE_DEVICES"] = instance.uuid if instance and instance.uuid else (device.uuid or str(device.index))
        env["WORKBENCH_SLICE_MIG"] = f"{p.profile}@{p.mig_start}"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(d.uuid or str(d.index) for d in devices)
    if kind == "fraction":
        fraction = p.memory_bytes / (devices[0].memory_bytes or 1) if devices[0].memory_bytes else p.gpu_milli / FULL
        text = f"{math.floor(min(fraction, p.gpu_milli / FULL) * 1000) / 1000:.3f}"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = text
        env["WORKBENCH_SLICE_MEMORY_FRACTION"] = text
    if p.cpu_milli:
        threads = str(max(1, math.floor(p.cpu_milli / 1000)))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, WORKBENCH_SLICE_CPU_CORES=f"{p.cpu_milli / 1000:g}")
    return env
