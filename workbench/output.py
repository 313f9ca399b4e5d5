"""Where a process's output goes: a job's log, or aside, for lines the user did not write."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Point fds 1 and 2 and `sys.stdout`/`sys.stderr` at `log_path` (appended, line-buffered), then restore.

    The file descriptors, not only Python's streams, so that C extensions and child processes
    write there too. Process-wide: output from other threads goes there while the block runs.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = (os.dup(1), os.dup(2))
    old = (sys.stdout, sys.stderr)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    out = io.TextIOWrapper(os.fdopen(os.dup(1), "wb", buffering=0), encoding="utf-8", errors="replace", line_buffering=True, write_through=True)
    err = io.TextIOWrapper(os.fdopen(os.dup(2), "wb", buffering=0), encoding="utf-8", errors="replace", line_buffering=True, write_through=True)
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        for stream in (out, err):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = old
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for stream in (out, err):
            with contextlib.suppress(Exception):
                stream.close()
        os.close(saved[0])
        os.close(saved[1])
