"""Synthetic trace events for the profiles tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"
ALL_TRACES = sorted(p.name for p in TRACES.glob("*.json.gz"))


def kernel(name: str, ts: float, dur: float, *, device: int = 0, stream: int = 7, corr: int = 1,
           cat: str = "kernel", pid: int = 0) -> dict[str, Any]:
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": stream, "ts": ts, "dur": dur,
            "args": {"device": device, "stream": stream, "correlation": corr}}


def cpu(name: str, ts: float, dur: float, *, cat: str = "cpu_op", tid: int = 1, corr: int | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"ph": "X", "cat": cat, "name": name, "pid": 100, "tid": tid, "ts": ts, "dur": dur}
    if corr is not None:
        e["args"] = {"correlation": corr}
    return e
