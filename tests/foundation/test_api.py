from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_facade_devices_and_reprs(wb) -> None:  # type: ignore[no-untyped-def]
    inv = wb.devices()
    assert any(d.kind == "cpu" for d in inv.devices)
    assert "CPU only" in repr(inv) or "GPUs" in repr(inv)
    assert "<table>" in inv._repr_html_()
    assert repr(wb).startswith("<Workbench user=")
    html = wb._repr_html_()
    assert "embedded LocalCluster" in html and "sqlite" in html


def test_configured_fleet_replaces_discovery(tmp_path: Path) -> None:
    from workbench import Workbench

    wb = Workbench(home=tmp_path, fleet=ROOT / "data" / "fleets" / "h100_2x8.toml")
    assert wb.devices().gpu_count == 16
    html = wb.devices()._repr_html_()
    assert "16× H100-80GB" in html


def test_a_view_for_another_user_shares_the_store_and_leaves_it_open(tmp_path: Path) -> None:
    from workbench import Workbench

    with Workbench(home=tmp_path, user="alice", fleet=ROOT / "data" / "fleets" / "h100_2x8.toml") as wb:
        assert wb.for_user("alice") is wb
        view = wb.for_user("bob")
        assert view.user == "bob" and wb.user == "alice"
        assert view.store is wb.store and view.devices() is wb.devices()
        lease = view.slices.request("cpu:1")
        assert lease.owner == "bob"
        view.close()  # the view's close must not close the store its owner still uses
        assert [x.id for x in wb.slices.list(owner="bob")] == [lease.id]
