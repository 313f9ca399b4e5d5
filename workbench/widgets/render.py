"""HTML drawings shared by the notebook widgets and the Panel dashboard.

Pure functions from what the facade returns (an `Inventory`, leases, jobs) to HTML strings, so
the fleet looks the same in a notebook cell and on the dashboard, and the drawing can be tested
without a browser. Styles are inline or in `CSS` (scoped under `.wb-…` classes) because a
notebook output has no stylesheet of ours.
"""

from __future__ import annotations

import html
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from workbench.inventory.catalog import MIG_MEMORY_SLICES

# Lease states that hold capacity (drawn on the device) and that wait (listed under the node).
HOLDING_STATES = frozenset({"active", "granted", "idle", "running", "allocated"})
WAITING_STATES = frozenset({"queued", "pending", "waiting"})
TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled", "preempted"})

STATE_COLORS = {
    "queued": "#8a94a6", "allocating": "#b7791f", "running": "#2b6cb0", "succeeded": "#2f855a",
    "failed": "#c53030", "cancelled": "#718096", "preempted": "#9c4221", "active": "#2f855a",
    "granted": "#2f855a", "idle": "#b7791f", "pending": "#8a94a6", "waiting": "#8a94a6",
    "released": "#718096", "expired": "#718096", "refused": "#c53030",
}

CSS = """
.wb-fleet{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:13px;color:#1a202c}
.wb-node{border:1px solid #e2e8f0;border-radius:8px;padding:10px 12px;margin:0 0 12px 0;background:#fff}
.wb-node h4{margin:0 0 8px 0;font-size:14px;display:flex;gap:12px;align-items:baseline}
.wb-node h4 small{color:#718096;font-weight:400}
.wb-dev{display:grid;grid-template-columns:210px 1fr;gap:10px;align-items:center;margin:4px 0}
.wb-dev-label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.wb-dev-label small{color:#718096}
.wb-bar{position:relative;display:flex;height:24px;border-radius:5px;background:#edf2f7;overflow:hidden}
.wb-mig{display:grid;grid-template-columns:repeat(8,1fr);gap:2px;height:24px}
.wb-cell{background:#edf2f7;border-radius:3px}
.wb-part{display:flex;align-items:center;justify-content:center;color:#fff;font-size:11px;
  white-space:nowrap;overflow:hidden;border-radius:3px;padding:0 4px;min-width:0}
.wb-part.free{background:#fff;color:#4a5568;border:1px dashed #a0aec0}
.wb-waiting{color:#4a5568;font-size:12px;margin-top:6px}
.wb-badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.wb-legend{color:#718096;font-size:12px;margin-top:4px}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def owner_color(owner: str | None) -> str:
    """A stable colour per owner, so one person's parts look alike across GPUs and pages."""
    hue = zlib.crc32((owner or "?").encode()) % 360
    return f"hsl({hue},55%,45%)"


def state_badge(state: str | None) -> str:
    color = STATE_COLORS.get(state or "", "#4a5568")
    return f"<span class='wb-badge wb-state-{esc(state)}' style='background:{color}'>{esc(state)}</span>"


def gib(n: int | float | None) -> str:
    return "–" if n is None else f"{n / 1024**3:,.1f} GiB"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if not isinstance(obj, dict) else obj.get(name, default)


def _part(label: str, owner: str | None, style: str, title: str) -> str:
    return (
        f"<div class='wb-part' style='background:{owner_color(owner)};{style}' title='{esc(title)}'>"
        f"{esc(label)}</div>"
    )


def _lease_title(lease: Any) -> str:
    return f"{_get(lease, 'id')} · {_get(lease, 'owner')} · {_get(lease, 'kind')} · {_get(lease, 'state')}"


def _mig_drawing(device: Any, leases: Sequence[Any]) -> str:
    spec = device.spec
    cells = "".join(
        f"<div class='wb-cell' style='grid-column:{i + 1};grid-row:1'></div>" for i in range(MIG_MEMORY_SLICES)
    )
    parts: list[str] = []
    taken: set[int] = set()
    for lease in leases:
        profile = spec.mig_profile(_get(lease, "profile") or "")
        start = _get(lease, "mig_start")
        if _get(lease, "kind") == "whole":
            profile_span, start = MIG_MEMORY_SLICES, 0
        elif profile is None or start is None:
            continue
        else:
            profile_span = profile.memory_slices
        taken.update(range(start, start + profile_span))
        label = f"{_get(lease, 'profile') or 'whole'} · {_get(lease, 'owner')}"
        parts.append(_part(label, _get(lease, "owner"), f"grid-column:{start + 1}/span {profile_span};grid-row:1",
                           _lease_title(lease)))
    for inst in device.mig_instances:
        profile = spec.mig_profile(inst.profile)
        span = profile.memory_slices if profile else 1
        if inst.start in taken:
            continue
        parts.append(
            f"<div class='wb-part free' style='grid-column:{inst.start + 1}/span {span};grid-row:1' "
            f"title='MIG instance {esc(inst.profile)} at slice {inst.start}, free'>{esc(inst.profile)} free</div>"
        )
    return f"<div class='wb-mig'>{cells}{''.join(parts)}</div>"


def _share_drawing(leases: Sequence[Any], capacity_milli: int, field: str) -> str:
    parts = []
    for lease in leases:
        if _get(lease, "kind") == "whole" and field == "gpu_milli":
            milli = capacity_milli
        else:
            milli = _get(lease, field) or 0
        if milli <= 0:
            continue
        width = 100.0 * min(milli, capacity_milli) / capacity_milli
        what = (f"{milli / 1000:g} core" + ("" if milli == 1000 else "s")) if field == "cpu_milli" else (
            "whole" if _get(lease, "kind") == "whole" else f"{milli / 1000:.0%}")
        parts.append(_part(f"{what} · {_get(lease, 'owner')}", _get(lease, "owner"), f"width:{width:.2f}%",
                           _lease_title(lease)))
    return f"<div class='wb-bar'>{''.join(parts)}</div>"


def _device_label(device: Any) -> str:
    if device.kind == "cpu":
        return f"<b>CPU</b> <small>{esc(device.model)} · {device.cores or '?'} cores</small>"
    mig = " · MIG" if device.mig else ""
    return f"<b>GPU {device.index}</b> <small>{esc(device.model)} · {gib(device.memory_bytes)}{mig}</small>"


def leases_by_device(leases: Iterable[Any]) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Split leases into those holding each device key and those waiting (by node, or '' if unplaced)."""
    holding: dict[str, list[Any]] = defaultdict(list)
    waiting: dict[str, list[Any]] = defaultdict(list)
    for lease in leases:
        state = _get(lease, "state")
        keys = list(_get(lease, "device_keys") or ())
        if state in HOLDING_STATES:
            for key in keys:
                holding[key].append(lease)
        elif state in WAITING_STATES:
            waiting[_get(lease, "node") or ""].append(lease)
    return holding, waiting


def fleet_html(inventory: Any, leases: Iterable[Any] = (), *, max_nodes: int = 32) -> str:
    """The fleet: each node, each device and whose lease each part of it is.

    MIG GPUs are drawn as their 8 memory slices with instances placed at their start slice;
    shared fractions as filled shares of a bar; CPU slices as shares of the node's cores.
    """
    holding, waiting = leases_by_device(leases)
    nodes = list(inventory.nodes)
    out = [f"<style>{CSS}</style><div class='wb-fleet'>"]
    for node in nodes[:max_nodes]:
        out.append(
            f"<div class='wb-node' data-node='{esc(node.name)}'><h4>{esc(node.name)}"
            f"<small>{node.cpu_milli / 1000:g} cores · {node.memory_mib / 1024:,.0f} GiB RAM · "
            f"{len(node.gpus)} GPUs</small></h4>"
        )
        for device in node.devices:
            mine = holding.get(device.key, [])
            if device.kind == "cpu":
                drawing = _share_drawing(mine, max(1, (device.cores or node.cpu_milli // 1000) * 1000), "cpu_milli")
            elif device.mig:
                drawing = _mig_drawing(device, mine)
            else:
                drawing = _share_drawing(mine, 1000, "gpu_milli")
            out.append(
                f"<div class='wb-dev' data-device='{esc(device.key)}'><div class='wb-dev-label'>"
                f"{_device_label(device)}</div>{drawing}</div>"
            )
        queued = waiting.get(node.name, [])
        if queued:
            out.append("<div class='wb-waiting'>waiting: " + ", ".join(
                f"{esc(_get(q, 'owner'))} ({esc(_get(q, 'kind'))}, #{esc(_get(q, 'queue_position'))})" for q in queued
            ) + "</div>")
        out.append("</div>")
    if len(nodes) > max_nodes:
        out.append(f"<p class='wb-legend'>… and {len(nodes) - max_nodes:,} more nodes</p>")
    unplaced = waiting.get("", [])
    if unplaced:
        out.append("<div class='wb-waiting'>waiting for capacity: " + ", ".join(
            f"{esc(_get(q, 'owner'))} ({esc(_get(q, 'kind'))} {esc(_get(q, 'profile') or '')}, "
            f"#{esc(_get(q, 'queue_position'))}: {esc(_get(q, 'reason'))})" for q in unplaced
        ) + "</div>")
    out.append("<div class='wb-legend'>MIG GPUs: 8 memory slices, instances placed at their start slice; "
               "shared GPUs and CPUs: filled shares; colour = owner.</div></div>")
    return "".join(out)


def error_html(title: str, message: str | None, traceback: str | None = None) -> str:
    tb = (f"<details open><summary>traceback</summary><pre style='white-space:pre-wrap;font-size:12px'>"
          f"{esc(traceback)}</pre></details>") if traceback else ""
    return (f"<div class='wb-error' style='border-left:4px solid #c53030;background:#fff5f5;padding:8px 12px;"
            f"border-radius:4px'><b>{esc(title)}</b><div style='white-space:pre-wrap'>{esc(message)}</div>{tb}</div>")
