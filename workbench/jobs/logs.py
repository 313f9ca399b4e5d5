"""A job's log, read by offset: one reader for REST, the job widget, the dashboard and `jobs logs -f`.

Each face used to read the file its own way (by offset, whole file then the tail, a follow loop);
now `wb.jobs.read_log(job_id, offset, limit)` returns a `LogChunk` and the faces keep only where
they are (`next_offset`) and whether to ask again (`ended`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

LOG_CHUNK_BYTES = 256 * 1024  # the most one read returns, so a long log travels in pieces


@dataclass(frozen=True)
class LogChunk:
    """Text of a job's log from byte `offset` to `next_offset`; `ended`: the job has ended and this is the end of its log."""

    job_id: str
    state: str
    offset: int
    next_offset: int
    text: str
    ended: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogChunk:
        return cls(**data)


def read_file(path: str | os.PathLike[str] | None, offset: int, limit: int = LOG_CHUNK_BYTES) -> tuple[str, int, int]:
    """(text, next offset, file size) of at most `limit` bytes from `offset`, cut at a whole UTF-8 character.

    A missing file, or an offset past the end (a reader ahead of a log still being written), gives no text.
    """
    if not path:
        return "", offset, 0
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if offset >= size:
                return "", offset, size
            handle.seek(offset)
            chunk = handle.read(limit)
    except FileNotFoundError:
        return "", offset, 0
    cut = len(chunk)  # never cut a UTF-8 character in two: hand back only whole characters
    while cut > 0 and cut > len(chunk) - 4:
        try:
            chunk[:cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            cut -= 1
    return chunk[:cut].decode("utf-8", errors="replace"), offset + cut, size
