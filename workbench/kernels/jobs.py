"""Kernel checks and benchmarks as jobs on a slice: `wb.kernels.submit(...)`.

The job runs in the slice's own process (its CUDA_VISIBLE_DEVICES and memory settings in place),
so a researcher benchmarks on the GPU slice they hold. Results are the job's return value and
the artifact `kernel_results.json`; a failed check fails the job with the failures listed.
"""

from __future__ import annotations

import json
from typing import Any


def run_kernels(what: str = "check", names: list[str] | None = None, backend: str | None = None,
                shapes: list[list[int]] | None = None, dtypes: list[str] | None = None,
                passes: list[str] | None = None) -> list[dict[str, Any]]:
    """The job's body: check or bench built-in kernels in this (the slice's) process."""
    from workbench.jobs.context import artifacts_dir
    from workbench.kernels.service import KernelService

    service = KernelService(None)
    results = service._run(what, names, backend, shapes, dtypes, passes=passes, save=False)
    payload = [r.as_json() for r in results]
    (artifacts_dir() / "kernel_results.json").write_text(json.dumps(payload, indent=1))
    print(repr(results), flush=True)
    if results.failed:
        raise RuntimeError(f"{len(results.failed)} kernel cases failed: " + "; ".join(r.error or r.label for r in results.failed[:5]))
    return payload
