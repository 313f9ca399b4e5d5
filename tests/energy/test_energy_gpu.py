"""The meter on a real NVIDIA GPU (skipped without one): NVML's energy counter, the power curve, the cost."""

from __future__ import annotations

import time

import pytest

from workbench.energy.meter import EnergyMeter
from workbench.inventory.catalog import lookup

pytestmark = pytest.mark.requires_gpu


def _busy(torch, seconds: float) -> int:
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
        done += 20
    return done


def test_nvml_energy_counter_on_a_real_gpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch cannot use the GPU here")
    meter = EnergyMeter.from_environment({"CUDA_VISIBLE_DEVICES": "0"})  # the default: a sample a second
    with meter:
        _busy(torch, 4.0)
    reading = meter.reading
    assert reading is not None
    assert reading.method == "nvml-energy" and not reading.estimated, reading.detail
    tdp = lookup(meter.devices[0].model).tdp_w or 1000.0
    assert 20.0 < reading.avg_power_w < 1.2 * tdp, reading
    assert len(reading.samples) >= 3
    # An NVML read costs about 3 ms of CPU on an H100 (seen 2026-11-26), in the meter's own thread.
    assert reading.overhead_fraction < 0.01, reading.overhead_fraction
