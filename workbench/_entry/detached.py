"""A detached driver: `workbench jobs run PATH` without `--wait` returns at once, and this runs the job.

The CLI starts `python -m workbench._entry.detached '<request json>'` in a new session. It submits
the job (so it is the job's driver: its embedded Dask cluster or its connection to
`WORKBENCH_DASK_SCHEDULER`), prints the job as one JSON line for the CLI to show, then follows
the job to its end and exits. `workbench jobs cancel ID` from any process reaches it through the
database; if this process is killed, any workbench reports the job `lost`, not running.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    import orjson

    from workbench.api import Workbench
    from workbench.errors import WorkbenchError

    args = sys.argv[1:] if argv is None else argv
    request: dict[str, Any] = orjson.loads(args[0])

    def refuse(message: str) -> int:
        sys.stdout.write(orjson.dumps({"submit_error": message}).decode() + "\n")
        sys.stdout.flush()
        return 1

    try:  # a data folder it cannot write, a database away: the CLI prints why
        wb = Workbench()
    except WorkbenchError as exc:
        return refuse(str(exc))
    try:
        try:
            job = wb.jobs.submit(
                request["path"], slice=request.get("slice"), framework=request.get("framework"),
                name=request.get("name"), priority=request.get("priority", 0), retries=request.get("retries", 0),
                timeout=request.get("timeout"), profile=request.get("profile", False),
                params=request.get("params") or None, args=request.get("args") or None, cwd=request.get("cwd"),
            )
        except WorkbenchError as exc:
            return refuse(str(exc))
        sys.stdout.write(orjson.dumps(job.as_json(), default=str).decode() + "\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the CLI has read its line and gone; nothing else goes to its pipe
        os.dup2(devnull, 2)
        job.wait()
        return 0
    finally:
        wb.close()


if __name__ == "__main__":
    sys.exit(main())
