"""The meter against a fake NVML driver, a fake powercap folder and this machine's CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from energy_fakes import FakeClock, FakeGpu, FakeNvml

from workbench.energy.meter import EnergyMeter
from workbench.errors import InvalidRequest
from workbench.inventory import load_fleet
from workbench.inventory.discovery import cpu_device, discover

ROOT = Path(__file__).resolve().parents[2]


def _gpus(nvml: FakeNvml):
    return [d for d in discover(nvml=nvml).devices if d.kind == "gpu"]


def test_nvml_energy_counter_is_shared_by_the_slice(clock: FakeClock) -> None:
    gpu = FakeGpu()
    nvml = FakeNvml([gpu])
    meter = EnergyMeter(_gpus(nvml), share=0.25, nvml=nvml, clock=clock, sample_interval_s=3600)
    meter.start()
    clock.advance(10)
    gpu.energy_mj += 4_000_000  # 4 kJ over 10 s on the whole GPU: 400 W
    reading = meter.stop()
    assert reading.method == "nvml-energy" and not reading.estimated
    assert reading.energy_j == pytest.approx(1000.0)  # a quarter of 4 kJ
    assert reading.avg_power_w == pytest.approx(100.0)
    assert reading.duration_s == pytest.approx(10.0)
    assert "share 0.25" in reading.detail
    assert meter.energy_j == reading.energy_j and meter.estimated is False


def test_power_curve_and_energy_per_step(clock: FakeClock) -> None:
    gpu = FakeGpu()
    nvml = FakeNvml([gpu])
    meter = EnergyMeter(_gpus(nvml), nvml=nvml, clock=clock, sample_interval_s=3600)
    meter.start()
    for watts in (100, 300, 200):
        clock.advance(2)
        gpu.energy_mj += watts * 2 * 1000
        meter._sample()  # what the background thread does every interval
    meter.mark_step(1)
    clock.advance(1)
    gpu.energy_mj += 50_000
    reading = meter.stop()
    assert [round(w) for _, w in reading.samples] == [100, 300, 200, 50]
    assert [round(t) for t, _ in reading.samples] == [2, 4, 6, 7]
    assert reading.steps == [(1, pytest.approx(1200.0))]
    assert reading.energy_j == pytest.approx(1250.0)


def test_background_thread_samples_the_counter() -> None:
    gpu = FakeGpu()
    nvml = FakeNvml([gpu])
    meter = EnergyMeter(_gpus(nvml), nvml=nvml, sample_interval_s=0.01)
    meter.start()
    deadline = time.monotonic() + 5
    while nvml.calls.get("energy", 0) < 6 and time.monotonic() < deadline:
        gpu.energy_mj += 1000
        time.sleep(0.005)
    reading = meter.stop()
    assert len(reading.samples) >= 4
    assert reading.energy_j > 0


def test_old_gpu_without_energy_counter_integrates_power(clock: FakeClock) -> None:
    gpu = FakeGpu(name="Tesla P100-PCIE-16GB", has_energy_counter=False, power_mw=200_000)
    nvml = FakeNvml([gpu])
    meter = EnergyMeter(_gpus(nvml), nvml=nvml, clock=clock, sample_interval_s=3600)
    meter.start()
    clock.advance(5)
    reading = meter.stop()
    assert reading.method == "nvml-power" and not reading.estimated
    assert reading.energy_j == pytest.approx(1000.0)


def test_declared_fleet_gpu_is_an_estimate_from_tdp(clock: FakeClock) -> None:
    device = load_fleet(ROOT / "data/fleets/h100_2x8.toml").devices[0]
    meter = EnergyMeter([device], share=0.5, clock=clock, sample_interval_s=3600)
    meter.start()
    clock.advance(10)
    reading = meter.stop()
    assert reading.estimated and reading.method == "estimate-tdp"
    assert reading.energy_j == pytest.approx(700 * 10 * 0.5)  # TDP 700 W, utilization unknown -> 100 %
    assert "assumed 100 %" in reading.detail and "estimate" in repr(reading)


def test_unknown_model_without_nvml_is_a_clear_error() -> None:
    device = load_fleet(ROOT / "data/cluster/openb_node_list_gpu_node.csv").device("openb-node-1000/0")
    assert device.spec.tdp_w is None
    with pytest.raises(InvalidRequest, match="no TDP for model"):
        EnergyMeter([device])


def _powercap(root: Path, packages: dict[str, tuple[int, int]]) -> Path:
    for name, (energy, max_range) in packages.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "energy_uj").write_text(f"{energy}\n")
        (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    (root / "intel-rapl:0:0").mkdir()  # a sub-domain (core): must not be counted twice
    (root / "intel-rapl:0:0" / "energy_uj").write_text("999999\n")
    return root


def test_rapl_counts_packages_and_survives_wraparound(tmp_path: Path, clock: FakeClock) -> None:
    root = _powercap(tmp_path / "powercap", {"intel-rapl:0": (900_000_000, 1_000_000_000), "intel-rapl:1": (5, 1_000_000_000)})
    meter = EnergyMeter([cpu_device()], powercap=root, clock=clock, share=0.5, sample_interval_s=3600)
    meter.start()
    clock.advance(2)
    (root / "intel-rapl:0" / "energy_uj").write_text("100000000\n")  # wrapped: +200 J
    (root / "intel-rapl:1" / "energy_uj").write_text("50000005\n")  # +50 J
    reading = meter.stop()
    assert reading.method == "rapl" and not reading.estimated
    assert reading.energy_j == pytest.approx(125.0)  # half of 250 J


def test_cpu_estimate_from_cpu_time_when_rapl_is_unreadable(tmp_path: Path) -> None:
    meter = EnergyMeter([cpu_device()], powercap=tmp_path / "none", sample_interval_s=0.05)
    cpu0 = time.process_time()
    meter.start()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        sum(range(1000))
    reading = meter.stop()
    busy = time.process_time() - cpu0
    assert reading.estimated and reading.method == "estimate-tdp" and "10 W per busy core" in reading.detail
    assert reading.energy_j == pytest.approx(busy * 10.0, rel=0.3)


def test_measuring_costs_under_one_percent(tmp_path: Path) -> None:
    """The target: a 1 s job sampled 10 times a second spends < 1 % of its time in the meter."""
    meter = EnergyMeter([cpu_device()], powercap=tmp_path / "none", sample_interval_s=0.1)
    meter.start()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        sum(range(1000))
    reading = meter.stop()
    assert len(reading.samples) >= 2
    assert reading.overhead_fraction < 0.01, reading.overhead_fraction


def test_from_environment_meters_the_visible_gpu_only() -> None:
    gpus = [FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")]
    nvml = FakeNvml(gpus)
    meter = EnergyMeter.from_environment({"CUDA_VISIBLE_DEVICES": "GPU-b"}, nvml=nvml, sample_interval_s=3600)
    assert [d.uuid for d in meter.devices] == ["GPU-b"]
    assert EnergyMeter.from_environment({}, nvml=nvml).devices[0].kind == "cpu"


def test_bad_arguments_and_misuse() -> None:
    with pytest.raises(InvalidRequest, match="share"):
        EnergyMeter([cpu_device()], share=0)
    with pytest.raises(InvalidRequest, match="sample_interval_s"):
        EnergyMeter([cpu_device()], sample_interval_s=0)
    meter = EnergyMeter([cpu_device()])
    with pytest.raises(InvalidRequest, match="not running"):
        meter.stop()
    with meter:
        with pytest.raises(InvalidRequest, match="already running"):
            meter.start()
    assert meter.reading is not None and meter.reading.as_json()["method"] == "estimate-tdp"


def test_one_sampling_thread_serves_many_measurements_and_ends_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.energy import meter as meter_module

    monkeypatch.setattr(meter_module, "_SAMPLER_IDLE_S", 0.2)
    nvml = FakeNvml([FakeGpu()])
    meter = EnergyMeter(_gpus(nvml), nvml=nvml, sample_interval_s=0.01)
    threads = set()
    for _ in range(3):  # back-to-back jobs on one worker reuse one thread
        meter.start()
        time.sleep(0.05)
        threads.add(meter._thread)
        assert len(meter.stop().samples) >= 2
    assert len(threads) == 1
    sampler = threads.pop()
    sampler.join(5)  # idle for longer than _SAMPLER_IDLE_S: it ends, nothing leaks
    assert not sampler.is_alive() and meter._thread is None
    meter.start()  # and the next measurement starts a new one
    time.sleep(0.05)
    assert meter._thread is not None and meter._thread.is_alive()
    assert len(meter.stop().samples) >= 2
