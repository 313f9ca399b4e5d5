"""Profiles: capture (torch.profiler, jax.profiler), ingest of Chrome/Kineto and JAX traces into
one event table, the analyses, run-vs-run comparison, and views.

Modules: `capture` (no database needed; used inside job workers), `ingest` (decoding and the
table's schema), `table` (the DataFrame and its Parquet cache), `analysis` (pure functions),
`views` (Bokeh timeline and plots, export to Chrome JSON), `profile` (`Profile`), `service`
(`ProfileService`, i.e. `wb.profiles`). Importing this package imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Profile", "ProfileService", "capture_trace", "open_table"]

_HOMES = {"Profile": "profile", "ProfileService": "service", "capture_trace": "capture", "open_table": "table"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
