"""Measure the energy a job uses: NVML on NVIDIA GPUs, RAPL on CPUs, else a labelled estimate.

How the jobs service uses it (the whole interface)::

    from workbench.energy.meter import EnergyMeter

    meter = EnergyMeter(devices, share=0.25, sample_interval_s=1.0)   # or EnergyMeter.from_environment()
    meter.start()
    ...                                  # run the job; meter.mark_step(step) where the job logs a step
    reading = meter.stop()               # an EnergyReading (also kept as meter.reading)
    reading.energy_j, reading.avg_power_w, reading.estimated, reading.method, reading.samples
    wb.energy.job_fields(reading)        # JobRow columns: energy_j, avg_power_w, energy_estimated, carbon_g

    with EnergyMeter(devices, share=share) as meter:   # the same as a context manager;
        ...                                            # afterwards meter.energy_j, .avg_power_w,
                                                       # .estimated, .reading

`devices` are `workbench.inventory.Device` objects (the devices of the job's slice; pydantic
objects, so they travel to a Dask worker), `None` for this machine's GPUs (or its CPU where there
is none). `share` is the slice's part of the device: 1.0 for a whole GPU, the fraction for a
shared slice, compute slices / 7 for a MIG instance; the counters measure the whole GPU, so the
meter charges the job `share` of what they count.

Where the joules come from, in order of preference per device:
- GPU with NVML: the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, Volta and
  newer), read at start, at stop and every `sample_interval_s` for the power curve
  (method `nvml-energy`); on older GPUs the power reading integrated over the samples
  (`nvml-power`).
- CPU: RAPL package counters under `/sys/class/powercap` when this process may read them
  (`rapl`; counter wrap-around handled).
- Otherwise an **estimate**, `estimated=True`: the catalog TDP × measured utilization
  (`estimate-tdp`). For a GPU the utilization comes from NVML when it answers, else it is assumed
  to be 100 % (an upper bound; a declared fleet's GPUs are never measured). For the CPU the
  catalog has no TDP, so the meter assumes `cpu_watts_per_core` (10 W, a typical server part's
  TDP per core) × the cores the job's process tree kept busy (its CPU seconds); the share does not
  apply there since the CPU time is the job's own.

Cost: a sample reads one counter per device, in the meter's own thread (NVML and file reads
release the GIL). A RAPL or `/proc` read takes tens of microseconds; an NVML energy read took
about 4 ms of CPU on an H100 (measured 2026-11-26), so keep `sample_interval_s` at 1 s or more
on GPUs: a 10 s bf16 matmul job there ran as fast metered as not (wall ratio 0.9998) and the
meter used 0.5 % of its run time in CPU. The meter times its own reads (CPU time) and reports
`overhead_s` and `overhead_fraction` in every reading, so the "measuring costs <= 1 % of a
job's run time" target is checked on each job, not assumed; very short jobs (under about 1 s on
a GPU) pay the fixed cost of the start and stop reads and can exceed it.

NVML is a seam: `EnergyMeter(..., nvml=fake)` takes any object with pynvml's function names, and
`powercap=` any folder laid out like `/sys/class/powercap`, so tests hand in a fake driver's
answers while the logic stays real.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import InvalidRequest
from workbench.inventory.catalog import lookup
from workbench.inventory.devices import Device
from workbench.inventory.discovery import load_nvml
from workbench.units import format_energy_j

DEFAULT_POWERCAP = Path("/sys/class/powercap")
CPU_WATTS_PER_CORE = 10.0


@dataclass(frozen=True)
class EnergyReading:
    """What one measured run cost. Energies and powers are already the job's share."""

    energy_j: float
    avg_power_w: float
    duration_s: float
    estimated: bool
    method: str
    detail: str
    share: float
    started_at: dt.datetime
    ended_at: dt.datetime
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, W)
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, joules since start)
    overhead_s: float = 0.0

    @property
    def overhead_fraction(self) -> float:
        """CPU time the meter spent reading counters, as a share of the run's wall time."""
        return self.overhead_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / 3.6e6

    def as_json(self) -> dict[str, Any]:
        return {
            "energy_j": self.energy_j,
            "avg_power_w": self.avg_power_w,
            "duration_s": self.duration_s,
            "estimated": self.estimated,
            "method": self.method,
            "detail": self.detail,
            "share": self.share,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "samples": [list(s) for s in self.samples],
            "steps": [list(s) for s in self.steps],
            "overhead_s": self.overhead_s,
            "overhead_fraction": self.overhead_fraction,
        }

    def __repr__(self) -> str:
        label = "estimated" if self.estimated else "measured"
        return (
            f"<EnergyReading {format_energy_j(self.energy_j)} over {self.duration_s:,.2f} s, "
            f"{self.avg_power_w:,.1f} W average, {label} by {self.method}>"
        )


# -- sources: each gives a monotone cumulative joule count for a whole device -------------------


class _Source:
    method = ""
    estimated = False
    shared = True  # whether the meter's share applies to this source's joules
    detail = ""

    def read_j(self, now: float) -> float:  # pragma: no cover - interface
        raise NotImplementedError


class _NvmlEnergy(_Source):
    method = "nvml-energy"

    def __init__(self, nvml: Any, handle: Any, label: str) -> None:
        self.nvml, self.handle = nvml, handle
        self.detail = f"{label}: NVML total-energy counter"

    def read_j(self, now: float) -> float:
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)) / 1000.0


class _NvmlPower(_Source):
    """Integrates the instantaneous power reading (trapezoids) over the meter's samples."""

    method = "nvml-power"

    def __init__(self, nvml: Any, handle: Any, label: str) -> None:
        self.nvml, self.handle = nvml, handle
        self.detail = f"{label}: NVML power readings integrated over the samples (no energy counter on this GPU)"
        self._last: tuple[float, float] | None = None
        self._total = 0.0

    def read_j(self, now: float) -> float:
        watts = float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0
        if self._last is not None:
            t0, w0 = self._last
            self._total += (now - t0) * (w0 + watts) / 2.0
        self._last = (now, watts)
        return self._total


class _Rapl(_Source):
    method = "rapl"

    def __init__(self, files: list[tuple[Path, float]]) -> None:
        self.files = files  # (energy_uj path, max_energy_range_uj)
        self._last: list[float | None] = [None] * len(files)
        self._total_uj = 0.0
        self.detail = "CPU: RAPL package counters (" + ", ".join(p.parent.name for p, _ in files) + ")"

    def read_j(self, now: float) -> float:
        for i, (path, max_range) in enumerate(self.files):
            raw = float(path.read_text())
            last = self._last[i]
            if last is not None:
                delta = raw - last
                if delta < 0:  # the counter wrapped
                    delta += max_range
                self._total_uj += delta
            self._last[i] = raw
        return self._total_uj / 1e6


class _GpuEstimate(_Source):
    method = "estimate-tdp"
    estimated = True

    def __init__(self, tdp_w: float, label: str, utilization: Callable[[], float | None] | None) -> None:
        self.tdp_w = tdp_w
        self.utilization = utilization
        self._last: float | None = None
        self._util_seen = False
        self._total = 0.0
        self._label = label

    @property
    def detail(self) -> str:  # type: ignore[override]
        how = "NVML utilization" if self._util_seen else "utilization unknown, assumed 100 % (an upper bound)"
        return f"{self._label}: estimate, catalog TDP {self.tdp_w:g} W x {how}"

    def read_j(self, now: float) -> float:
        util = None
        if self.utilization is not None:
            try:
                util = self.utilization()
            except Exception:  # noqa: BLE001 - `utilization` is a seam (NVML or a fake); a failed reading falls back to full power
                util = None
        fraction = 1.0 if util is None else max(0.0, min(1.0, util / 100.0))
        self._util_seen = self._util_seen or util is not None
        if self._last is not None:
            self._total += (now - self._last) * self.tdp_w * fraction
        self._last = now
        return self._total


class _CpuEstimate(_Source):
    """CPU seconds of a process tree x watts per busy core: TDP x measured utilization."""

    method = "estimate-tdp"
    estimated = True
    shared = False
    CHILDREN_EVERY_S = 5.0

    def __init__(self, pid: int, watts_per_core: float) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.watts_per_core = watts_per_core
        self._children: list[Any] = []
        self._child_last: dict[int, float] = {}
        self._listed_at = float("-inf")
        self.detail = (
            f"CPU: estimate, {watts_per_core:g} W per busy core (the catalog has no CPU TDP) "
            f"x CPU seconds of process {pid} and its children"
        )

    def _cpu_seconds(self, now: float) -> float:
        # This process's own times come from one `times()` call; psutil parses /proc for others.
        t = os.times() if self.process.pid == os.getpid() else self.process.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        if now - self._listed_at >= self.CHILDREN_EVERY_S:
            # Listing children scans /proc (about 1 ms), so it is refreshed only every few seconds.
            try:
                self._children = self.process.children(recursive=True)
            except Exception:  # noqa: BLE001 - psutil.Error, or any error of a `process` seam (tests hand in fakes)
                self._children = []
            self._listed_at = now
        for child in self._children:
            try:
                c = child.cpu_times()
            except Exception:  # a child that ended: its time is in children_* once it is waited for
                self._child_last.pop(child.pid, None)
                continue
            self._child_last[child.pid] = c.user + c.system
        return total + sum(self._child_last.values())

    def read_j(self, now: float) -> float:
        return self._cpu_seconds(now) * self.watts_per_core


# -- the meter ---------------------------------------------------------------------------------
_SAMPLER_IDLE_S = 30.0  # a meter's sampling thread ends after this long without a measurement



def _rapl_files(root: Path) -> list[tuple[Path, float]]:
    """Package-level RAPL domains (`intel-rapl:N`, not their `:N:M` sub-domains) we can read."""
    files: list[tuple[Path, float]] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.count(":") != 1 or not entry.name.startswith(("intel-rapl", "amd-rapl")):
            continue
        energy = entry / "energy_uj"
        try:
            float(energy.read_text())
            max_range = float((entry / "max_energy_range_uj").read_text())
        except (OSError, ValueError):  # since 2020 kernels let only root read energy_uj
            continue
        files.append((energy, max_range))
    return files


class EnergyMeter:
    """Energy of one run on a set of devices; see the module docstring for the interface."""

    def __init__(
        self,
        devices: Sequence[Device] | None = None,
        *,
        share: float = 1.0,
        sample_interval_s: float = 1.0,
        nvml: Any | None = None,
        powercap: Path | str = DEFAULT_POWERCAP,
        pid: int | None = None,
        cpu_watts_per_core: float = CPU_WATTS_PER_CORE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise InvalidRequest(f"energy share {share!r} is not a part of a device; valid: 0 < share <= 1")
        if sample_interval_s <= 0:
            raise InvalidRequest(f"sample_interval_s {sample_interval_s!r} must be > 0 seconds")
        self.share = float(share)
        self.sample_interval_s = float(sample_interval_s)
        self._clock = clock
        self._nvml = nvml
        self._nvml_loaded = nvml is not None
        if devices is None:
            from workbench.inventory.discovery import discover

            found = discover(nvml=self._driver()).devices
            gpus = [d for d in found if d.kind == "gpu"]
            devices = gpus or [d for d in found if d.kind == "cpu"]
        if not devices:
            raise InvalidRequest("an energy meter needs at least one device")
        self.devices = list(devices)
        self._sources = [self._source_for(d, Path(powercap), pid or os.getpid(), cpu_watts_per_core) for d in self.devices]
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._measuring = threading.Event()  # set from start() to stop(): the sampler samples
        self.reading: EnergyReading | None = None
        self._reset()

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, *, nvml: Any | None = None, **kwargs: Any) -> EnergyMeter:
        """The GPUs a slice's process sees (`CUDA_VISIBLE_DEVICES`: UUIDs, MIG UUIDs or indices), else the CPU.

        A MIG UUID is metered on its parent GPU (the counter is per GPU), so pass the
        instance's `share` (compute slices / 7).
        """
        env = os.environ if environ is None else environ
        meter_nvml = nvml if nvml is not None else load_nvml()
        from workbench.inventory.discovery import cpu_device, discover

        visible = env.get("CUDA_VISIBLE_DEVICES")
        if meter_nvml is None or visible is None or visible.strip() in ("", "-1", "NoDevFiles"):
            return cls([cpu_device()], nvml=meter_nvml, **kwargs)
        gpus = [d for d in discover(nvml=meter_nvml).devices if d.kind == "gpu"]
        chosen: list[Device] = []
        for token in (t.strip() for t in visible.split(",") if t.strip()):
            for d in gpus:
                if token == str(d.index) or token == d.uuid or any(m.uuid == token for m in d.mig_instances):
                    if d not in chosen:
                        chosen.append(d)
        return cls(chosen or [cpu_device()], nvml=meter_nvml, **kwargs)

    # -- sources --
    def _driver(self) -> Any | None:
        if not self._nvml_loaded:
            self._nvml = load_nvml()
            self._nvml_loaded = True
        return self._nvml

    def _source_for(self, device: Device, powercap: Path, pid: int, cpu_watts_per_core: float) -> _Source:
        if device.kind == "cpu":
            files = _rapl_files(powercap)
            return _Rapl(files) if files else _CpuEstimate(pid, cpu_watts_per_core)
        label = f"GPU {device.key} ({device.model})"
        nvml = self._driver() if device.source == "nvml" else None
        handle = None
        if nvml is not None:
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(device.uuid) if device.uuid else nvml.nvmlDeviceGetHandleByIndex(device.index)
            except Exception:  # noqa: BLE001 - NVML is a seam (pynvml or a fake), whose errors share no type; no handle means estimate
                handle = None
        if handle is not None:
            for source_cls in (_NvmlEnergy, _NvmlPower):
                source = source_cls(nvml, handle, label)
                try:
                    source.read_j(self._clock())
                except Exception:  # not supported on this GPU
                    continue
                return source
        tdp = lookup(device.model).tdp_w
        if tdp is None:
            raise InvalidRequest(
                f"cannot meter GPU {device.key}: no NVML answer and the catalog has no TDP for model {device.model!r}; "
                "known models: see workbench.inventory.catalog.specs()"
            )
        util = None
        if handle is not None and nvml is not None:
            util = lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)  # noqa: E731
        return _GpuEstimate(float(tdp), label, util)

    # -- measuring --
    def _reset(self) -> None:
        self._t0: float | None = None
        self._e0: list[float] = []
        self._last_t = 0.0
        self._last_e = 0.0
        self._samples: list[tuple[float, float]] = []
        self._steps: list[tuple[int, float]] = []
        self._overhead_s = 0.0
        self._started_at: dt.datetime | None = None

    def _read(self) -> tuple[float, list[float]]:
        cpu_before = time.thread_time()  # CPU time, so waiting for the GIL is not counted as cost
        now = self._clock()
        values = [s.read_j(now) for s in self._sources]
        self._overhead_s += time.thread_time() - cpu_before
        return now, values

    def _job_joules(self, values: list[float]) -> float:
        return sum(
            (v - v0) * (self.share if s.shared else 1.0) for s, v, v0 in zip(self._sources, values, self._e0, strict=True)
        )

    def _sample(self) -> float:
        with self._lock:
            return self._sample_locked()

    def _sample_locked(self) -> float:
        now, values = self._read()
        energy = self._job_joules(values)
        if now > self._last_t:
            self._samples.append((now - (self._t0 or now), (energy - self._last_e) / (now - self._last_t)))
        self._last_t, self._last_e = now, energy
        return energy

    def _run(self) -> None:
        """The sampler: one thread that outlives a measurement and serves the next (a job worker
        reuses one meter for every job; a thread started per job cost more than a no-op job).
        It ends after `_SAMPLER_IDLE_S` without a measurement; `start()` starts another."""
        while True:
            if not self._measuring.wait(_SAMPLER_IDLE_S):
                with self._lock:
                    if not self._measuring.is_set():
                        self._thread = None
                        return
                continue
            if self._stop.wait(self.sample_interval_s):
                continue  # stopped; wait for the next start()
            with self._lock:
                if self.running:
                    self._sample_locked()

    @property
    def running(self) -> bool:
        return self._t0 is not None

    def start(self) -> EnergyMeter:
        """Read every counter and start sampling the power curve in a background thread."""
        if self.running:
            raise InvalidRequest("this energy meter is already running; stop() it first")
        with self._lock:
            self._reset()
            self._started_at = dt.datetime.now(dt.timezone.utc)
            now, values = self._read()
            self._t0, self._e0, self._last_t, self._last_e = now, values, now, 0.0
            self._stop.clear()
            self._measuring.set()
            if self._thread is None:  # none, or it ended idle (it clears this under the lock)
                self._thread = threading.Thread(target=self._run, name="workbench-energy-meter", daemon=True)
                self._thread.start()
        return self

    def energy_so_far_j(self) -> float:
        """Joules used since start() so far (the job's share)."""
        if not self.running:
            raise InvalidRequest("the energy meter is not running; call start() first")
        with self._lock:
            _now, values = self._read()
            return self._job_joules(values)

    def mark_step(self, step: int) -> float:
        """Record the energy used up to the end of `step`; returns it. Energy per step is the difference."""
        energy = self.energy_so_far_j()
        self._steps.append((int(step), energy))
        return energy

    def stop(self) -> EnergyReading:
        """Read the counters a last time, stop sampling, and return the reading."""
        if not self.running or self._t0 is None or self._started_at is None:
            raise InvalidRequest("the energy meter is not running; call start() first")
        with self._lock:
            self._measuring.clear()
            self._stop.set()
            energy = self._sample_locked()
            duration = max(self._last_t - self._t0, 0.0)
            methods = sorted({s.method for s in self._sources})
            reading = EnergyReading(
                energy_j=energy,
                avg_power_w=energy / duration if duration > 0 else 0.0,
                duration_s=duration,
                estimated=any(s.estimated for s in self._sources),
                method="+".join(methods),
                detail="; ".join(s.detail for s in self._sources) + (f"; share {self.share:g}" if self.share != 1 else ""),
                share=self.share,
                started_at=self._started_at,
                ended_at=dt.datetime.now(dt.timezone.utc),
                samples=list(self._samples),
                steps=list(self._steps),
                overhead_s=self._overhead_s,
            )
            self._t0 = None
        self.reading = reading
        return reading

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.stop()

    # The last reading's figures, so `with EnergyMeter() as m: ...` then `m.energy_j` works.
    @property
    def energy_j(self) -> float | None:
        return None if self.reading is None else self.reading.energy_j

    @property
    def avg_power_w(self) -> float | None:
        return None if self.reading is None else self.reading.avg_power_w

    @property
    def estimated(self) -> bool | None:
        return None if self.reading is None else self.reading.estimated

    def __repr__(self) -> str:
        methods = "+".join(sorted({s.method for s in self._sources}))
        state = "running" if self.running else "idle"
        return f"<EnergyMeter {len(self.devices)} device(s) by {methods}, share {self.share:g}, {state}>"
