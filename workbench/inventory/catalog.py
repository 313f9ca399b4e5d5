"""The device catalog: what each accelerator model can do, on paper.

Figures are the vendor's datasheet numbers for dense (not 2:4 sparse) math, used for rooflines,
energy estimates and placement constraints. MIG geometry follows NVIDIA's *Multi-Instance GPU User
Guide* ("Supported MIG Profiles" tables for A100 40GB, A100 80GB, H100 80GB and H200 141GB): a MIG
GPU has 8 memory slices and 7 compute slices; each profile takes a fixed run of memory slices and
may start only at the listed memory-slice indices. Datasheets: NVIDIA A100 (2020, rev. 2021), H100
(2023), H200 (2024), L4 (2023), T4 (2019), V100 (2018), P100 (2016), A10 (2021).

Unknown models (for example Alibaba's undisclosed G1-G3) are accepted: `lookup` returns a spec
with the name and `None` for every figure that is not known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TERA = 1e12
GIB = 1024**3
GB = 1000**3

# Framework dtype names -> the catalog's precision names.
_DTYPE_NAMES = {"float64": "fp64", "float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
                "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "int8": "int8"}

MIG_MEMORY_SLICES = 8
MIG_COMPUTE_SLICES = 7


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One MIG profile of one GPU model, e.g. `3g.40gb` on an H100 80GB."""

    name: str
    compute_slices: int
    memory_slices: int
    starts: tuple[int, ...]
    max_count: int
    memory_bytes: int
    media_extensions: bool = False

    def occupies(self, start: int) -> range:
        """Memory-slice indices an instance placed at `start` takes."""
        return range(start, start + self.memory_slices)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Datasheet figures of one accelerator model (None where unknown)."""

    name: str
    vendor: str
    memory_bytes: int | None
    memory_bandwidth_bps: float | None
    peak_flops: dict[str, float] = field(default_factory=dict)
    tdp_w: float | None = None
    mig_profiles: tuple[MigProfile, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    def mig_profile(self, name: str) -> MigProfile | None:
        for profile in self.mig_profiles:
            if profile.name == name:
                return profile
        return None

    def peak_flops_for(self, dtype: str) -> float | None:
        """Peak dense FLOP/s for `dtype`, named as the catalog does (`fp16`) or as torch/jax do
        (`float16`, `torch.bfloat16`)."""
        name = str(dtype).removeprefix("torch.")
        return self.peak_flops.get(_DTYPE_NAMES.get(name, name))


def _mig_family(total_gb: int, unit_gb: int) -> tuple[MigProfile, ...]:
    """The seven MIG profiles of an 8-memory-slice GPU whose slice holds `unit_gb` (marketing GB).

    Names follow NVIDIA's tables: 1g.{u}gb, 1g.{u}gb+me, 1g.{2u}gb, 2g.{2u}gb, 3g.{4u}gb,
    4g.{4u}gb, 7g.{total}gb. The H200's names are not exact multiples (18/35/71/141), so the
    names are passed in by `_named_family`.
    """
    return _named_family(
        (f"{unit_gb}gb", f"{2 * unit_gb}gb", f"{4 * unit_gb}gb", f"{total_gb}gb"), unit_gb * GB
    )


def _named_family(sizes: tuple[str, str, str, str], slice_bytes: int) -> tuple[MigProfile, ...]:
    one, two, four, full = sizes
    return (
        MigProfile(f"1g.{one}", 1, 1, (0, 1, 2, 3, 4, 5, 6), 7, slice_bytes),
        MigProfile(f"1g.{one}+me", 1, 1, (0, 1, 2, 3, 4, 5, 6), 1, slice_bytes, media_extensions=True),
        MigProfile(f"1g.{two}", 1, 2, (0, 2, 4, 6), 4, 2 * slice_bytes),
        MigProfile(f"2g.{two}", 2, 2, (0, 2, 4), 3, 2 * slice_bytes),
        MigProfile(f"3g.{four}", 3, 4, (0, 4), 2, 4 * slice_bytes),
        MigProfile(f"4g.{four}", 4, 4, (0,), 1, 4 * slice_bytes),
        MigProfile(f"7g.{full}", 7, 8, (0,), 1, 8 * slice_bytes),
    )


def _a100_40gb_family() -> tuple[MigProfile, ...]:
    # A100 40GB: 1g.5gb, 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb.
    return _named_family(("5gb", "10gb", "20gb", "40gb"), 5 * GB)


def _tf(**values: float) -> dict[str, float]:
    return {k: v * TERA for k, v in values.items()}


_SPECS: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        "A100-40GB", "nvidia", 40 * GIB, 1555e9,
        _tf(fp64=9.7, fp32=19.5, tf32=156, fp16=312, bf16=312, int8=624), 400, _a100_40gb_family(),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "A100-SXM4-40GB", "A100"),
    ),
    DeviceSpec(
        "A100-80GB", "nvidia", 80 * GIB, 2039e9,
        _tf(fp64=9.7, fp32=19.5, tf32=156, fp16=312, bf16=312, int8=624), 400, _mig_family(80, 10),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "A100-SXM4-80GB"),
    ),
    DeviceSpec(
        "H100-80GB", "nvidia", 80 * GIB, 3.35e12,
        _tf(fp64=34, fp32=67, tf32=494.5, fp16=989.5, bf16=989.5, fp8=1979, int8=1979), 700, _mig_family(80, 10),
        ("NVIDIA H100 80GB HBM3", "H100-SXM5-80GB", "H100 SXM", "H100"),
    ),
    DeviceSpec(
        "H100-PCIe-80GB", "nvidia", 80 * GIB, 2.0e12,
        _tf(fp64=26, fp32=51, tf32=378, fp16=756, bf16=756, fp8=1513, int8=1513), 350, _mig_family(80, 10),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
    ),
    DeviceSpec(
        "H200-141GB", "nvidia", 141 * GB, 4.8e12,
        _tf(fp64=34, fp32=67, tf32=494.5, fp16=989.5, bf16=989.5, fp8=1979, int8=1979), 700,
        _named_family(("18gb", "35gb", "71gb", "141gb"), 141 * GB // 8),
        ("NVIDIA H200", "H200"),
    ),
    DeviceSpec("L4", "nvidia", 24 * GIB, 300e9, _tf(fp32=30.3, tf32=60, fp16=121, bf16=121, fp8=242.5, int8=242.5), 72, (), ("NVIDIA L4",)),
    DeviceSpec("T4", "nvidia", 16 * GIB, 320e9, _tf(fp32=8.1, fp16=65, int8=130), 70, (), ("Tesla T4", "NVIDIA T4")),
    DeviceSpec("V100-16GB", "nvidia", 16 * GIB, 900e9, _tf(fp64=7.8, fp32=15.7, fp16=125), 300, (), ("Tesla V100-SXM2-16GB", "V100M16")),
    DeviceSpec("V100-32GB", "nvidia", 32 * GIB, 900e9, _tf(fp64=7.8, fp32=15.7, fp16=125), 300, (), ("Tesla V100-SXM2-32GB", "V100M32")),
    DeviceSpec("P100", "nvidia", 16 * GIB, 732e9, _tf(fp64=4.7, fp32=9.3, fp16=18.7), 250, (), ("Tesla P100-PCIE-16GB", "Tesla P100-SXM2-16GB")),
    DeviceSpec("A10", "nvidia", 24 * GIB, 600e9, _tf(fp32=31.2, tf32=62.5, fp16=125, bf16=125, int8=250), 150, (), ("NVIDIA A10",)),
    # The CPU: its figures depend on the machine; discovery fills memory and cores at run time.
    DeviceSpec("CPU", "cpu", None, None, {}, None, (), ("cpu",)),
)


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY: dict[str, DeviceSpec] = {}
for _spec in _SPECS:
    for _key in (_spec.name, *_spec.aliases):
        _BY_KEY[_normalize(_key)] = _spec


def specs() -> tuple[DeviceSpec, ...]:
    """Every model the catalog knows."""
    return _SPECS


def lookup(model: str) -> DeviceSpec:
    """The spec for `model` as NVML, a fleet file or a person names it.

    Exact names and aliases first, then NVML-style names by their distinguishing parts (an
    "NVIDIA H100 80GB HBM3" is the H100 SXM). Unknown names give a spec with no figures.
    """
    key = _normalize(model)
    if key in _BY_KEY:
        return _BY_KEY[key]
    guess = _guess(key)
    if guess is not None:
        return guess
    return DeviceSpec(model, "unknown", None, None)


def _guess(key: str) -> DeviceSpec | None:
    rules = (
        ("h200", "H200-141GB"),
        ("h100pcie", "H100-PCIe-80GB"),
        ("h100", "H100-80GB"),
        ("a10080", "A100-80GB"),
        ("a100", "A100-40GB"),
        ("v10032", "V100-32GB"),
        ("v100", "V100-16GB"),
        ("t4", "T4"),
        ("l4", "L4"),
        ("p100", "P100"),
        ("a10", "A10"),
    )
    for needle, name in rules:
        if needle in key:
            return _BY_KEY[_normalize(name)]
    return None


