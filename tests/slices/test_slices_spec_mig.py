"""Slice specs and the exact MIG planner (checked against an independent brute force)."""

from __future__ import annotations

import itertools
import random

import pytest

from workbench.errors import InvalidRequest
from workbench.inventory.catalog import lookup
from workbench.slices.mig import plan_mig
from workbench.slices.spec import parse_spec


@pytest.mark.parametrize(
    ("text", "kind", "field", "value"),
    [
        ("cpu", "cpu", "cpu_milli", 1000),
        ("cpu:2", "cpu", "cpu_milli", 2000),
        ("cpu:0.5", "cpu", "cpu_milli", 500),
        ("1g.10gb", "mig", "profile", "1g.10gb"),
        ("0.25", "fraction", "gpu_milli", 250),
        (0.25, "fraction", "gpu_milli", 250),
        ("10GiB", "fraction", "gpu_memory_bytes", 10 * 1024**3),
        ("gpu", "whole", "gpu_count", 1),
        ("gpu:4", "whole", "gpu_count", 4),
        (1.0, "whole", "gpu_count", 1),
    ],
)
def test_parse_spec(text: object, kind: str, field: str, value: object) -> None:
    spec = parse_spec(text)  # type: ignore[arg-type]
    assert spec.kind == kind
    assert getattr(spec, field) == value


@pytest.mark.parametrize(("text", "words"), [(0, "more than 0"), ("1.5", "at most 1"), ("-0.1", "more than 0"),
                                              ("cpu:0", "more than 0"), ("gpu:0", "whole number"), ("bogus", "valid specs")])
def test_parse_spec_rejects_with_reason(text: object, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        parse_spec(text)  # type: ignore[arg-type]


def _brute_force(model: str, profiles: list[str], existing: list[tuple[str, int]]) -> bool:
    """Independent check: try every combination of allowed starts."""
    spec = lookup(model)
    profs = [spec.mig_profile(p) for p in profiles]
    ex = [(spec.mig_profile(p), s) for p, s in existing]
    for starts in itertools.product(*[p.starts for p in profs]):  # type: ignore[union-attr]
        items = ex + list(zip(profs, starts))
        mem = [0] * 8
        ok = sum(p.compute_slices for p, _ in items) <= 7  # type: ignore[union-attr]
        counts: dict[str, int] = {}
        for p, s in items:
            counts[p.name] = counts.get(p.name, 0) + 1  # type: ignore[union-attr]
            ok &= counts[p.name] <= p.max_count  # type: ignore[union-attr]
            for i in range(s, s + p.memory_slices):  # type: ignore[union-attr]
                mem[i] += 1
        if ok and max(mem) <= 1:
            return True
    return False


def _valid_layout(model: str, placements: list[tuple[str, int]]) -> bool:
    spec = lookup(model)
    mem = [0] * 8
    compute = 0
    for name, start in placements:
        p = spec.mig_profile(name)
        assert p is not None and start in p.starts
        compute += p.compute_slices
        for i in p.occupies(start):
            mem[i] += 1
    return compute <= 7 and max(mem) <= 1


@pytest.mark.parametrize("model", ["H100-80GB", "A100-40GB", "H200-141GB"])
def test_planner_is_complete_against_brute_force(model: str) -> None:
    spec = lookup(model)
    names = [p.name for p in spec.mig_profiles]
    rng = random.Random(7)
    for _ in range(150):
        existing: list[tuple[str, int]] = []
        for _ in range(rng.randint(0, 2)):
            p = spec.mig_profile(rng.choice(names))
            assert p is not None
            candidate = existing + [(p.name, rng.choice(p.starts))]
            if _brute_force(model, [], candidate) or not candidate:
                existing = candidate
        wanted = [rng.choice(names) for _ in range(rng.randint(1, 4))]
        plan = plan_mig(model, wanted, [f"{p}@{s}" for p, s in existing])
        assert plan.feasible == _brute_force(model, wanted, existing), (wanted, existing, plan)
        if plan.feasible:
            assert sorted(p.profile for p in plan.placements) == sorted(wanted)
            assert _valid_layout(model, existing + [(p.profile, p.start) for p in plan.placements])
        else:
            assert plan.reason


def test_planner_keeps_large_profiles_placeable() -> None:
    # One 1g.10gb on an empty H100 goes to the upper half, so a 4g.40gb (start 0 only) still fits.
    plan = plan_mig("H100-80GB", ["1g.10gb"])
    assert plan.feasible
    start = plan.placements[0].start
    assert start >= 4  # the 4g.40gb and 3g.40gb at 0 stay placeable
    assert plan_mig("H100-80GB", ["4g.40gb"], [f"1g.10gb@{start}"]).feasible


def test_planner_examples_and_errors() -> None:
    assert plan_mig("NVIDIA H100 80GB HBM3", ["7g.80gb"]).as_json() == {"feasible": True, "placements": [{"profile": "7g.80gb", "start": 0}]}
    assert not plan_mig("H100-80GB", ["1g.10gb+me", "1g.10gb+me"]).feasible
    assert "at most 1" in (plan_mig("H100-80GB", ["1g.10gb+me", "1g.10gb+me"]).reason or "")
    assert not plan_mig("H100-80GB", ["4g.40gb"], ["3g.40gb@0"]).feasible
    assert plan_mig("H100-80GB", ["3g.40gb"], ["3g.40gb@0"]).placements[0].start == 4
    assert not plan_mig("A100-40GB", ["4g.20gb", "4g.20gb"]).feasible
    with pytest.raises(InvalidRequest, match="valid: 1g.18gb"):
        plan_mig("H200-141GB", ["1g.10gb"])
    with pytest.raises(InvalidRequest, match="T4 has no MIG"):
        plan_mig("T4", ["1g.10gb"])
    with pytest.raises(InvalidRequest, match="valid starts: 0, 4"):
        plan_mig("H100-80GB", ["1g.10gb"], ["3g.40gb@2"])
