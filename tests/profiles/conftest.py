"""Fixtures for the profiles tests: the real traces in data/traces, and synthetic trace writers."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from profiles_helpers import TRACES


@pytest.fixture
def trace_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a trace from data/traces into a fresh folder (so caches land in tmp, not in data/)."""

    def copy(name: str) -> Path:
        target = tmp_path / "traces" / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(TRACES / name, target)
        return target

    return copy


@pytest.fixture
def write_trace(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic trace: a list of events (or any JSON value with `raw=`), gzip or not."""

    def write(events: Any = None, *, name: str = "t.json", raw: bytes | None = None, **top: Any) -> Path:
        path = tmp_path / name
        if raw is None:
            doc = {"traceEvents": events, **top} if events is not None else top
            raw = json.dumps(doc).encode()
        if name.endswith(".gz"):
            raw = gzip.compress(raw)
        path.write_bytes(raw)
        return path

    return write




@pytest.fixture(autouse=True)
def _no_cache_files_in_data() -> Iterator[None]:
    """Tests open data/traces with cache=False or through copies: the repository stays clean."""
    before = set(TRACES.glob("*.wbcache.parquet"))
    yield
    new = sorted(set(TRACES.glob("*.wbcache.parquet")) - before)
    for path in new:
        path.unlink(missing_ok=True)
    assert not new, f"a test wrote Parquet caches into data/traces: {[p.name for p in new]}"
