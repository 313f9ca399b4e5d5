from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.errors import FleetFileError
from workbench.inventory import discover, load_fleet
from workbench.inventory.catalog import GB, lookup, specs

ROOT = Path(__file__).resolve().parents[2]
ALIBABA_NODES = ROOT / "data" / "cluster" / "openb_node_list_gpu_node.csv"


def test_alibaba_fleet_has_6212_gpus_on_1213_nodes() -> None:
    inv = load_fleet(ALIBABA_NODES)
    assert len(inv.nodes) == 1213
    assert inv.gpu_count == 6212
    models = {d.model for d in inv.devices}
    assert {"G2", "T4", "P100", "V100M16", "G3", "V100M32", "A10"} <= models


def test_unknown_models_are_accepted_with_unknown_figures() -> None:
    spec = lookup("G2")
    assert spec.name == "G2" and spec.memory_bytes is None and spec.peak_flops == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("H100-80GB", "H100-80GB"),
        ("NVIDIA H100 PCIe", "H100-PCIe-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA H200", "H200-141GB"),
        ("Tesla T4", "T4"),
        ("V100M32", "V100-32GB"),
        ("NVIDIA L4", "L4"),
    ],
)
def test_catalog_resolves_nvml_and_short_names(name: str, expected: str) -> None:
    assert lookup(name).name == expected


def test_mig_geometry_matches_nvidia_tables() -> None:
    h100 = lookup("H100-80GB")
    names = [p.name for p in h100.mig_profiles]
    assert names == ["1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    p = {x.name: x for x in h100.mig_profiles}
    assert p["1g.10gb"].starts == (0, 1, 2, 3, 4, 5, 6) and p["1g.10gb"].max_count == 7
    assert p["1g.10gb+me"].max_count == 1
    assert p["1g.20gb"].starts == (0, 2, 4, 6) and p["1g.20gb"].memory_slices == 2
    assert p["2g.20gb"].starts == (0, 2, 4)
    assert p["3g.40gb"].starts == (0, 4) and p["3g.40gb"].memory_slices == 4
    assert p["4g.40gb"].starts == (0,) and p["7g.80gb"].memory_slices == 8
    assert [x.name for x in lookup("A100-40GB").mig_profiles][0] == "1g.5gb"
    assert [x.name for x in lookup("H200-141GB").mig_profiles] == [
        "1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]
    assert not lookup("T4").mig_capable


def test_every_known_gpu_has_memory_bandwidth_and_fp32_peak() -> None:
    for spec in specs():
        if spec.vendor == "nvidia":
            assert spec.memory_bytes and spec.memory_bandwidth_bps and spec.peak_flops["fp32"] > 0 and spec.tdp_w
    assert lookup("H100-80GB").peak_flops["bf16"] == pytest.approx(989.5e12)
    assert lookup("H200-141GB").memory_bytes == 141 * GB


def test_toml_fleet(tmp_path: Path) -> None:
    inv = load_fleet(ROOT / "data" / "fleets" / "h100_2x8.toml")
    assert [n.name for n in inv.nodes] == ["h100-0", "h100-1"]
    assert inv.gpu_count == 16 and all(d.mig and d.mig_capable for d in inv.devices)
    f = tmp_path / "f.toml"
    f.write_text('[[nodes]]\nname = "a"\ngpus = 1\nmodel = "A100-40GB"\nmig = true\nmig_instances = [["3g.20gb@0", "1g.5gb@4"]]\n')
    (gpu,) = load_fleet(f).devices
    assert [(m.profile, m.start) for m in gpu.mig_instances] == [("3g.20gb", 0), ("1g.5gb", 4)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sn,cpu_milli,memory_mib,model\nn1,1000,1024,T4\n", r"missing column\(s\) gpu"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,-2,T4\n", r"line 2: gpu = -2 is negative"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,two,T4\n", r"line 2: gpu = 'two' is not a whole number"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,1,T4\nn1,1000,1024,1,T4\n", r"line 3: node 'n1' is listed twice"),
        ("sn,cpu_milli,memory_mib,gpu,model\n", r"no nodes"),
    ],
)
def test_bad_alibaba_files_name_file_line_and_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "nodes.csv"
    f.write_text(text)
    with pytest.raises(FleetFileError, match=message):
        load_fleet(f)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[nodes]]\nname = 'a'\ngpus = -1\n", r"gpus = -1 must be a whole number"),
        ("[[nodes]]\nname = 'a'\ngpu = 1\n", r"unknown key\(s\) gpu"),
        ("[[nodes]]\nname = 'a'\ngpus = 1\nmodel = 'T4'\nmig = true\n", r"T4 has no MIG"),
        ("nodes = [\n", r"not valid TOML"),
        ("x = 1\n", r"at least one \[\[nodes\]\]"),
    ],
)
def test_bad_toml_fleets(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "fleet.toml"
    f.write_text(text)
    with pytest.raises(FleetFileError, match=message):
        load_fleet(f)


def test_discovery_without_a_driver_offers_the_cpu() -> None:
    inv = discover()
    cpu = [d for d in inv.devices if d.kind == "cpu"]
    assert len(cpu) == 1 and cpu[0].cores and cpu[0].memory_bytes and cpu[0].key.endswith("/cpu")


class _FakeNvml:
    """A driver's answers for two H100s, one in MIG mode with a 3g.40gb instance at start 4."""

    NVMLError = RuntimeError  # what pynvml's errors are to discovery; the fake raises RuntimeError

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> object:
        return ("gpu", i)

    def nvmlDeviceGetName(self, h: object) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, h: tuple) -> SimpleNamespace:
        if h[0] == "mig":
            return SimpleNamespace(total=40 * 10**9, used=0)
        return SimpleNamespace(total=81559 * 1024**2, used=1024**3)

    def nvmlDeviceGetMigMode(self, h: tuple) -> tuple[int, int]:
        return (1, 1) if h[1] == 1 else (0, 0)

    def nvmlDeviceGetUtilizationRates(self, h: object) -> SimpleNamespace:
        return SimpleNamespace(gpu=37)

    def nvmlDeviceGetPowerUsage(self, h: object) -> int:
        return 312_000

    def nvmlDeviceGetUUID(self, h: tuple) -> str:
        return f"{'MIG' if h[0] == 'mig' else 'GPU'}-{h[1]}"

    def nvmlDeviceGetMaxMigDeviceCount(self, h: object) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: tuple, i: int) -> tuple:
        if i > 0:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return ("mig", 100 + i)

    def nvmlDeviceGetGpuInstanceId(self, h: object) -> int:
        return 2

    def nvmlDeviceGetGpuInstanceById(self, h: object, gi: int) -> object:
        return "gi"

    def nvmlGpuInstanceGetInfo(self, gi: object) -> SimpleNamespace:
        return SimpleNamespace(placement=SimpleNamespace(start=4, size=4))


def test_discovery_reads_gpus_and_mig_instances_from_nvml() -> None:
    inv = discover(nvml=_FakeNvml())
    gpus = [d for d in inv.devices if d.kind == "gpu"]
    assert [g.uuid for g in gpus] == ["GPU-0", "GPU-1"]
    assert gpus[0].spec.name == "H100-80GB" and gpus[0].utilization_pct == 37 and gpus[0].power_w == 312
    assert not gpus[0].mig and gpus[1].mig
    (inst,) = gpus[1].mig_instances
    assert (inst.profile, inst.start, inst.uuid) == ("3g.40gb", 4, "MIG-100")
    assert any(d.kind == "cpu" for d in inv.devices)


def test_peak_flops_accept_framework_dtype_names() -> None:
    h100 = lookup("H100-80GB")
    assert h100.peak_flops_for("float16") == h100.peak_flops_for("fp16") == h100.peak_flops_for("torch.float16")
    assert h100.peak_flops_for("bfloat16") == pytest.approx(989.5e12)
    assert lookup("T4").peak_flops_for("bfloat16") is None
