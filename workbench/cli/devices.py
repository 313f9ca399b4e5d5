"""`workbench devices`: the inventory of this machine or of a declared fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.cli._common import console, get_workbench, plural, print_json, table


def _gib(n: int | None) -> str | None:
    return None if n is None else f"{n / 1024**3:.1f} GiB"


def register(app: typer.Typer) -> None:
    @app.command()
    def devices(
        fleet: Annotated[Optional[Path], typer.Option("--fleet", help="A declared fleet: TOML or Alibaba node-list CSV.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of devices.")] = False,
    ) -> None:
        """List devices: NVIDIA GPUs (NVML), else the CPU; or the GPUs of a declared fleet."""
        wb = get_workbench()
        inv = wb.devices(fleet=fleet)
        devices = inv.devices
        if as_json:
            print_json([d.as_json() for d in devices])
            return
        rows = [
            [d.node, d.index, d.kind, d.model, _gib(d.memory_bytes),
             f"{d.cores} cores" if d.kind == "cpu" else ("on" if d.mig else ("capable" if d.mig_capable else "no")),
             ", ".join(f"{m.profile}@{m.start}" for m in d.mig_instances) or None]
            for d in devices
        ]
        table(f"Devices ({inv.source})", ["node", "index", "kind", "model", "memory", "MIG / cores", "MIG instances"], rows)
        console.print(f"{plural(len(inv.nodes), 'node')}, {plural(inv.gpu_count, 'GPU')}")
