"""A process that checks or times built-in Triton kernels: `python -m workbench.kernels._worker`.

Triton's interpreter must be switched on before triton is imported, and the process asking for a
check (a notebook, the CLI) may already have imported triton without it; so the request (JSON, the
first argument) runs here, where TRITON_INTERPRET=1 is set first when there is no GPU. The results come
back as one JSON list on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MARKER = "\n@@workbench-kernel-results@@"


def _switch_interpreter_on_without_gpu() -> None:
    if "triton" in sys.modules:
        return
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


def _where() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def run(request: dict[str, Any]) -> list[dict[str, Any]]:
    from workbench.kernels import harness
    from workbench.kernels.registry import builtin_spec

    where = request.get("where") or _where()
    shapes = [tuple(s) for s in request["shapes"]] if request.get("shapes") is not None else None
    out: list[dict[str, Any]] = []
    for name in request["kernels"]:
        spec = builtin_spec(name, "triton")
        cases = harness.cases_for(spec, where, what=request["what"], shapes=shapes, dtypes=request.get("dtypes"),
                                  passes=request.get("passes"))
        if request["what"] == "check":
            results = harness.check_cases(spec, cases, seed=request.get("seed"))
        else:
            results = harness.bench_cases(spec, cases, seed=request.get("seed") or 0,
                                          baseline=request.get("baseline", True))
        out.extend(r.as_json() for r in results)
    return out


def main() -> None:
    _switch_interpreter_on_without_gpu()
    request = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    results = run(request)
    sys.stdout.write(MARKER + json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
