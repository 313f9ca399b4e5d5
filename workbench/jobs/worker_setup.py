"""Dask worker preload (`dask worker --preload workbench.jobs.worker_setup`) for slice workers.

A slice worker that the workbench started ends when the process that started it ends
(`WORKBENCH_JOB_DRIVER_PID`), so a crashed notebook kernel never leaves a worker holding a GPU
and its jobs are reported lost, not left running unseen. Nothing heavy is imported here: the
slice's environment must reach the framework before anything touches a device.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def dask_setup(worker: Any) -> None:
    parent = os.environ.get("WORKBENCH_JOB_DRIVER_PID")
    if parent and parent.isdigit() and int(parent) == os.getppid():
        threading.Thread(target=_watch_parent, args=(int(parent),), name="workbench-parent-watch", daemon=True).start()
