"""Declared fleets: nodes and GPUs that the allocator plans for as if they were there.

Two formats:
- TOML, written by people: `[[nodes]]` tables with `name`, `gpus`, `model`, optional `count`
  (that many nodes named `name-0`, `name-1`, ...), `cpus` or `cpu_milli`, `memory_gib` or
  `memory_mib`, `mig` (MIG mode on) and `mig_instances = ["3g.40gb@0", ...]` per GPU.
- The Alibaba cluster-trace-gpu-v2023 node list CSV (`sn, cpu_milli, memory_mib, gpu, model`).

The CSV is read with the standard library's `csv` (not pandas) so the CLI starts fast.
"""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

from workbench.errors import FleetFileError
from workbench.inventory.catalog import lookup
from workbench.inventory.devices import Device, Inventory, MigInstance, Node

ALIBABA_NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


def load_fleet(path: str | Path) -> Inventory:
    """Read a declared fleet from TOML or an Alibaba node-list CSV, by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise FleetFileError(f"{path}: no such fleet file")
    if path.suffix.lower() == ".toml":
        return _load_toml(path)
    if path.suffix.lower() == ".csv":
        return _load_alibaba_csv(path)
    raise FleetFileError(f"{path}: a fleet file is .toml or an Alibaba node-list .csv")


def _gpu(node: str, index: int, model: str, mig: bool, instances: tuple[MigInstance, ...] = ()) -> Device:
    spec = lookup(model)
    return Device(
        node=node, index=index, kind="gpu", model=model, memory_bytes=spec.memory_bytes,
        mig=mig, mig_capable=spec.mig_capable, mig_instances=instances, source="fleet",
    )


def _int_field(path: Path, line: int, column: str, raw: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise FleetFileError(f"{path}, line {line}: {column} = {raw!r} is not a whole number") from None
    if value < 0:
        raise FleetFileError(f"{path}, line {line}: {column} = {value} is negative")
    return value


def _load_alibaba_csv(path: Path) -> Inventory:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ALIBABA_NODE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise FleetFileError(
                f"{path}: missing column(s) {', '.join(missing)}; an Alibaba node list has {', '.join(ALIBABA_NODE_COLUMNS)}"
            )
        nodes: list[Node] = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            name = (row["sn"] or "").strip()
            if not name:
                raise FleetFileError(f"{path}, line {line}: empty node name (sn)")
            if name in seen:
                raise FleetFileError(f"{path}, line {line}: node {name!r} is listed twice")
            seen.add(name)
            gpus = _int_field(path, line, "gpu", row["gpu"])
            model = (row["model"] or "").strip() or "unknown"
            nodes.append(
                Node(
                    name=name,
                    cpu_milli=_int_field(path, line, "cpu_milli", row["cpu_milli"]),
                    memory_mib=_int_field(path, line, "memory_mib", row["memory_mib"]),
                    devices=tuple(_gpu(name, i, model, False) for i in range(gpus)),
                )
            )
    if not nodes:
        raise FleetFileError(f"{path}: no nodes")
    return Inventory(source=str(path), nodes=tuple(nodes))


def _parse_instance(path: Path, where: str, text: str) -> MigInstance:
    profile, sep, start = text.partition("@")
    if not sep or not start.isdigit():
        raise FleetFileError(f"{path}: {where}: MIG instance {text!r} must be PROFILE@START, e.g. 3g.40gb@0")
    return MigInstance(profile=profile, start=int(start))


def _toml_node(path: Path, i: int, table: dict[str, Any]) -> list[Node]:
    where = f"nodes[{i}]"
    known = {"name", "gpus", "model", "count", "cpus", "cpu_milli", "memory_gib", "memory_mib", "mig", "mig_instances"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise FleetFileError(f"{path}: {where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise FleetFileError(f"{path}: {where}: every node needs a name")
    gpus = table.get("gpus", 0)
    count = table.get("count", 1)
    for key, value in (("gpus", gpus), ("count", count)):
        if not isinstance(value, int) or value < 0:
            raise FleetFileError(f"{path}: {where} ({name}): {key} = {value!r} must be a whole number ≥ 0")
    model = str(table.get("model", "unknown"))
    cpu_milli = int(table.get("cpu_milli", int(table.get("cpus", 64)) * 1000))
    memory_mib = int(table.get("memory_mib", int(table.get("memory_gib", 512)) * 1024))
    mig = bool(table.get("mig", False))
    if mig and not lookup(model).mig_capable:
        raise FleetFileError(f"{path}: {where} ({name}): mig = true but {model} has no MIG")
    raw_instances = table.get("mig_instances", [])
    per_gpu: list[tuple[MigInstance, ...]] = []
    for g in range(gpus):
        entry = raw_instances[g] if g < len(raw_instances) else []
        items = entry if isinstance(entry, list) else [entry]
        per_gpu.append(tuple(_parse_instance(path, where, str(t)) for t in items))
    names = [name] if count == 1 else [f"{name}-{k}" for k in range(count)]
    return [
        Node(
            name=n, cpu_milli=cpu_milli, memory_mib=memory_mib,
            devices=tuple(_gpu(n, g, model, mig, per_gpu[g]) for g in range(gpus)),
        )
        for n in names
    ]


def _load_toml(path: Path) -> Inventory:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise FleetFileError(f"{path}: not valid TOML: {exc}") from None
    tables = data.get("nodes")
    if not isinstance(tables, list) or not tables:
        raise FleetFileError(f"{path}: a fleet file needs at least one [[nodes]] table")
    nodes = [node for i, table in enumerate(tables) for node in _toml_node(path, i, table)]
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise FleetFileError(f"{path}: node names repeat")
    return Inventory(source=str(path), nodes=tuple(nodes))
