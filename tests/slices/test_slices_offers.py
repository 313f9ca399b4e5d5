"""`wb.slices.offers()`: what can be requested on each kind of device, and every offer is granted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench import Workbench
from workbench.inventory.fleet import load_fleet
from workbench.slices.offers import fleet_offers, slice_label

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "data" / "fleets" / "mig_and_plain.toml"


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[Workbench]:
    bench = Workbench(home=tmp_path / "home", fleet=MIXED)
    yield bench
    bench.close()


def test_mig_profiles_only_on_mig_gpus_and_shares_only_on_the_others() -> None:
    inventory = load_fleet(MIXED)
    groups = {(g.device_kind, g.mig): g for g in fleet_offers(inventory)}
    assert list(groups) == [("gpu", True), ("gpu", False), ("cpu", False)]
    mig, plain, cpu = groups[("gpu", True)], groups[("gpu", False)], groups[("cpu", False)]
    catalog = [p.name for p in inventory.device("mig/0").spec.mig_profiles]
    assert mig.kinds == ["mig"] and mig.profiles == catalog and mig.nodes == ("mig",) and mig.devices == ("mig/0",)
    assert plain.kinds == ["fraction", "whole"] and plain.profiles == [] and plain.nodes == ("plain",)
    assert [o.spec for o in plain.offers] == ["0.25", "0.5", "gpu"]
    assert cpu.kinds == ["cpu"] and cpu.nodes == ("mig", "plain") and [o.spec for o in cpu.offers][-1] == "cpu:8"
    assert mig.label != plain.label  # one model, two kinds of device: a form tells them apart
    assert all(g.model_dump(mode="json") for g in groups.values())  # JSON-serializable records


def test_every_offer_is_granted_on_its_kind_of_device(mixed: Workbench) -> None:
    for group in mixed.slices.offers():
        for offer in group.offers:
            lease = mixed.slices.request(offer.spec, models=group.models, wait=False)
            assert lease.state == "active" and lease.kind == offer.kind, (offer, lease)
            assert set(lease.device_keys) <= set(group.devices) or group.device_kind == "cpu"
            assert lease.node in group.nodes
            lease.release()


def test_a_cpu_only_machine_offers_cpu_cores_up_to_its_own(wb: Workbench) -> None:
    (group,) = wb.slices.offers()
    cores = wb.devices().devices[0].cores or 1
    assert group.device_kind == "cpu" and all(int(o.spec.split(":")[1]) <= max(cores, 1) for o in group.offers)


@pytest.mark.parametrize(("kind", "fields", "label"), [
    ("mig", {"profile": "1g.10gb"}, "MIG 1g.10gb"),
    ("fraction", {"gpu_milli": 250}, "0.25 GPU"),
    ("whole", {"gpus": 2}, "2 whole GPUs"),
    ("whole", {}, "1 whole GPU"),
    ("cpu", {"cpu_milli": 2000}, "CPU ×2"),
    ("cpu", {"cpu_milli": 500}, "CPU ×0.5"),
])
def test_slice_labels(kind: str, fields: dict[str, object], label: str) -> None:
    assert slice_label(kind, **fields) == label  # type: ignore[arg-type]
