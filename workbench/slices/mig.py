"""Exact MIG layout planning: where new instances can start on a GPU beside the ones already there.

A MIG GPU (A100, H100, H200) has 8 memory slices and 7 compute slices. A profile takes a fixed run
of memory slices and may start only at the indices NVIDIA lists for it; two instances conflict
when their memory runs overlap; compute slices add up to at most 7; some profiles are limited per
GPU (`1g.10gb+me`: one). The search is exhaustive (backtracking over at most 8 instances and a
handful of starts each), so it is *complete*: when a placement exists it is found. Among all
feasible placements it returns the one that keeps the largest profiles still placeable afterwards
(compared by the biggest free-memory profile that still fits, then how many of each size fit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workbench.errors import InvalidRequest
from workbench.inventory.catalog import (
    MIG_COMPUTE_SLICES,
    MIG_MEMORY_SLICES,
    DeviceSpec,
    MigProfile,
    lookup,
)


@dataclass(frozen=True)
class MigPlacement:
    profile: str
    start: int

    def as_json(self) -> dict[str, object]:
        return {"profile": self.profile, "start": self.start}


@dataclass
class MigPlan:
    """The planner's answer: the new instances' starts, or why there are none."""

    model: str
    feasible: bool
    placements: list[MigPlacement] = field(default_factory=list)
    existing: list[MigPlacement] = field(default_factory=list)
    reason: str | None = None

    def as_json(self) -> dict[str, object]:
        if not self.feasible:
            return {"feasible": False, "reason": self.reason}
        return {"feasible": True, "placements": [p.as_json() for p in self.placements]}

    @property
    def layout(self) -> list[MigPlacement]:
        """Every instance on the GPU afterwards: the existing ones and the new ones, by start."""
        return sorted([*self.existing, *self.placements], key=lambda p: (p.start, p.profile))

    def __repr__(self) -> str:
        if not self.feasible:
            return f"<MigPlan {self.model}: infeasible: {self.reason}>"
        new = ", ".join(f"{p.profile}@{p.start}" for p in self.placements)
        return f"<MigPlan {self.model}: {new}>"

    def _repr_html_(self) -> str:
        import html

        if not self.feasible:
            return f"<div><b>MIG plan for {html.escape(self.model)}</b>: not feasible — {html.escape(self.reason or '')}</div>"
        cells = ["<td style='border:1px solid #ccc;width:3em;color:#999'>free</td>"] * MIG_MEMORY_SLICES
        spec = lookup(self.model)
        new = set(self.placements)
        for p in self.layout:
            prof = spec.mig_profile(p.profile)
            width = prof.memory_slices if prof else 1
            color = "#90caf9" if p in new else "#e0e0e0"
            cells[p.start] = (
                f"<td colspan={width} style='border:1px solid #555;background:{color};text-align:center'>"
                f"{html.escape(p.profile)}</td>"
            )
            for i in range(p.start + 1, min(p.start + width, MIG_MEMORY_SLICES)):
                cells[i] = ""
        return (
            f"<div><b>MIG plan for {html.escape(spec.name)}</b> (blue: new)"
            f"<table style='border-collapse:collapse'><tr>{''.join(cells)}</tr></table></div>"
        )


def mig_spec(model: str) -> DeviceSpec:
    spec = lookup(model)
    if not spec.mig_capable:
        raise InvalidRequest(f"{model} has no MIG; MIG GPUs: A100-40GB, A100-80GB, H100-80GB, H200-141GB")
    return spec


def profile_of(spec: DeviceSpec, name: str) -> MigProfile:
    profile = spec.mig_profile(name.strip().lower())
    if profile is None:
        raise InvalidRequest(
            f"{name!r} is not a MIG profile of {spec.name}; valid: {', '.join(p.name for p in spec.mig_profiles)}"
        )
    return profile


def parse_existing(spec: DeviceSpec, items: Iterable[str | tuple[str, int] | MigPlacement]) -> list[MigPlacement]:
    """`["3g.40gb@0", ("1g.10gb", 5)]` -> placements, checked against the GPU's geometry."""
    out: list[MigPlacement] = []
    for item in items:
        if isinstance(item, MigPlacement):
            name, start = item.profile, item.start
        elif isinstance(item, str):
            name, sep, raw = item.partition("@")
            if not sep or not raw.strip().isdigit():
                raise InvalidRequest(f"existing MIG instance {item!r} must be PROFILE@START, e.g. 3g.40gb@4")
            start = int(raw)
        else:
            name, start = item[0], int(item[1])
        profile = profile_of(spec, name)
        if start not in profile.starts:
            raise InvalidRequest(
                f"{profile.name} cannot start at memory slice {start} on {spec.name}; valid starts: "
                + ", ".join(map(str, profile.starts))
            )
        out.append(MigPlacement(profile.name, start))
    problem = _conflict(spec, out)
    if problem:
        raise InvalidRequest(f"the existing MIG instances do not fit together on {spec.name}: {problem}")
    return out


def _conflict(spec: DeviceSpec, placements: Sequence[MigPlacement]) -> str | None:
    used = [False] * MIG_MEMORY_SLICES
    compute = 0
    counts: dict[str, int] = {}
    for p in placements:
        prof = spec.mig_profile(p.profile)
        assert prof is not None
        for i in prof.occupies(p.start):
            if used[i]:
                return f"{p.profile}@{p.start} overlaps another instance at memory slice {i}"
            used[i] = True
        compute += prof.compute_slices
        counts[prof.name] = counts.get(prof.name, 0) + 1
        if counts[prof.name] > prof.max_count:
            return f"at most {prof.max_count} {prof.name} per GPU"
    if compute > MIG_COMPUTE_SLICES:
        return f"{compute} compute slices used, at most {MIG_COMPUTE_SLICES}"
    return None


class _Board:
    """Occupancy during the search: memory-slice bitmask, compute used, count per profile."""

    __slots__ = ("compute", "counts", "mask")

    def __init__(self) -> None:
        self.mask = 0
        self.compute = 0
        self.counts: dict[str, int] = {}

    def fits(self, prof: MigProfile, start: int) -> bool:
        bits = ((1 << prof.memory_slices) - 1) << start
        return (
            not (self.mask & bits)
            and self.compute + prof.compute_slices <= MIG_COMPUTE_SLICES
            and self.counts.get(prof.name, 0) < prof.max_count
        )

    def put(self, prof: MigProfile, start: int) -> None:
        self.mask |= ((1 << prof.memory_slices) - 1) << start
        self.compute += prof.compute_slices
        self.counts[prof.name] = self.counts.get(prof.name, 0) + 1

    def take(self, prof: MigProfile, start: int) -> None:
        self.mask &= ~(((1 << prof.memory_slices) - 1) << start)
        self.compute -= prof.compute_slices
        self.counts[prof.name] -= 1


def _headroom(spec: DeviceSpec, board: _Board) -> tuple[int, ...]:
    """How good a layout is for what comes next: for each profile from the largest down, whether
    (and how many times, greedily) it could still be added. Larger tuples are better."""
    score: list[int] = []
    for prof in sorted(spec.mig_profiles, key=lambda p: (-p.memory_slices, -p.compute_slices, p.media_extensions)):
        placeable = sum(1 for s in prof.starts if board.fits(prof, s))
        score.append(placeable)
    return tuple(score)


def plan_mig(model: str, profiles: Sequence[str], existing: Iterable[str | tuple[str, int] | MigPlacement] = ()) -> MigPlan:
    """Place `profiles` on one GPU of `model` beside `existing` ones (PROFILE@START).

    Complete: every assignment of starts is tried (largest profiles first, identical profiles in
    increasing start order so symmetric layouts are not revisited). Raises `InvalidRequest` for an
    unknown model or profile; returns an infeasible plan with a reason when nothing fits.
    """
    spec = mig_spec(model)
    wanted = [profile_of(spec, p) for p in profiles]
    current = parse_existing(spec, existing)
    if not wanted:
        return MigPlan(spec.name, True, [], current)
    board = _Board()
    for p in current:
        prof = spec.mig_profile(p.profile)
        assert prof is not None
        board.put(prof, p.start)
    order = sorted(range(len(wanted)), key=lambda i: (-wanted[i].memory_slices, -wanted[i].compute_slices, wanted[i].name))
    best: tuple[tuple[int, ...], list[int]] | None = None
    starts = [0] * len(wanted)

    def search(k: int) -> None:
        nonlocal best
        if k == len(order):
            score = _headroom(spec, board)
            if best is None or score > best[0]:
                best = (score, starts.copy())
            return
        i = order[k]
        prof = wanted[i]
        # Identical profiles take increasing starts: the same layout is reached once.
        low = starts[order[k - 1]] + 1 if k and wanted[order[k - 1]].name == prof.name else -1
        for s in prof.starts:
            if s >= low and board.fits(prof, s):
                board.put(prof, s)
                starts[i] = s
                search(k + 1)
                board.take(prof, s)

    search(0)
    if best is None:
        return MigPlan(spec.name, False, [], current, reason=_why_infeasible(spec, wanted, current))
    placements = [MigPlacement(wanted[i].name, best[1][i]) for i in range(len(wanted))]
    return MigPlan(spec.name, True, placements, current)


def _why_infeasible(spec: DeviceSpec, wanted: Sequence[MigProfile], current: Sequence[MigPlacement]) -> str:
    all_profiles = [*(spec.mig_profile(p.profile) for p in current), *wanted]
    compute = sum(p.compute_slices for p in all_profiles if p)
    memory = sum(p.memory_slices for p in all_profiles if p)
    names = " + ".join(p.name for p in wanted)
    beside = f" beside {', '.join(f'{p.profile}@{p.start}' for p in current)}" if current else ""
    counts: dict[str, int] = {}
    for p in all_profiles:
        if p:
            counts[p.name] = counts.get(p.name, 0) + 1
            if counts[p.name] > p.max_count:
                return f"{names}{beside}: at most {p.max_count} {p.name} per {spec.name}"
    if compute > MIG_COMPUTE_SLICES:
        return f"{names}{beside}: needs {compute} compute slices, one {spec.name} has {MIG_COMPUTE_SLICES}"
    if memory > MIG_MEMORY_SLICES:
        return f"{names}{beside}: needs {memory} memory slices, one {spec.name} has {MIG_MEMORY_SLICES}"
    return f"{names}{beside}: no arrangement of the allowed start slices fits (the memory runs would overlap)"
