"""Plain HTML for the inventory in a notebook (no widget library needed)."""

from __future__ import annotations

import html
from collections import Counter

from workbench.inventory.devices import Device, Inventory

_MAX_ROWS = 40


def _gib(n: int | None) -> str:
    return "–" if n is None else f"{n / 1024**3:,.1f} GiB"


def _row(d: Device) -> str:
    mig = "MIG on" if d.mig else ("MIG capable" if d.mig_capable else "")
    extra = f"{d.cores} cores" if d.kind == "cpu" else mig
    cells = [d.node, str(d.index), d.kind, d.model, _gib(d.memory_bytes), extra]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def inventory_html(inv: Inventory) -> str:
    devices = inv.devices
    models = Counter(d.model for d in devices if d.kind == "gpu")
    summary = ", ".join(f"{n}× {m}" for m, n in models.most_common()) or "CPU only"
    head = "".join(f"<th>{h}</th>" for h in ("node", "index", "kind", "model", "memory", ""))
    rows = "".join(_row(d) for d in devices[:_MAX_ROWS])
    more = f"<p>… and {len(devices) - _MAX_ROWS:,} more devices</p>" if len(devices) > _MAX_ROWS else ""
    return (
        f"<div class='workbench-inventory'><b>Inventory</b> ({html.escape(inv.source)}): "
        f"{len(inv.nodes):,} nodes, {inv.gpu_count:,} GPUs — {html.escape(summary)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}</div>"
    )
