"""Fixtures for the jobs tests: one Workbench (one embedded Dask cluster) and one warm CPU slice per module.

Starting a cluster and a slice worker costs seconds, so the tests of a module share them; each
test still gets its own jobs, folders and database rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def jobs_wb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from workbench import Workbench

    bench = Workbench(home=tmp_path_factory.mktemp("jobs-home"), user="alice")
    bench.jobs.cancel_grace_s = 1.0
    yield bench
    bench.close()


@pytest.fixture(scope="module")
def lease(jobs_wb: Any) -> Iterator[Any]:
    held = jobs_wb.slices.request("cpu", ttl_s=600)
    yield held
    held.release()
