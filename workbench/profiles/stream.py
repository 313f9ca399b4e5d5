"""Reading a trace in bounded pieces: the file's bytes in blocks, gunzipped as they come, and the
events of ``traceEvents`` cut into pieces of whole events, so that no step holds the whole text.

What it refuses, and why: a path that is not a regular file (a FIFO would block forever,
``/dev/zero`` never ends), more JSON than ``profile_max_json_bytes`` (a 4 MB gzip can hold
4 GiB of spaces), a single event larger than the piece budget (a part of
``profile_memory_bytes``). Errors say what is wrong and where; they never quote the file.

Why the cutting is hand-written: msgspec and orjson decode whole documents, and ijson streams
but builds a Python dict per event (slower than ``json.load``). Cutting is cheap here (the last
``},`` of a buffer) and every piece is still decoded and validated by msgspec; a cut that falls
inside a string or a nested object leaves unbalanced JSON, which the decoder refuses with
"truncated" (or at the closing bracket we add), and the piece is then cut at an earlier place.
"""

from __future__ import annotations

import os
import re
import stat
import types
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import xxhash

from workbench.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from workbench.profiles.ingest import _Event, _Trace

try:  # ISA-L's inflate is about twice as fast as zlib's; the same API, so zlib is the fallback
    from isal import isal_zlib

    _gzip: types.ModuleType = isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency, but a wheel may be missing
    _gzip = zlib

READ_BYTES = 1 << 20  # one read(2) of the file
INFLATE_BYTES = 4 << 20  # at most this much JSON text out of one inflate call
MIB = 1 << 20


class TraceError(InvalidRequest):
    """A trace file cannot be read: not a regular file, not gzip, not JSON, over a cap, ..."""


@dataclass(frozen=True)
class Limits:
    """The caps of one ingest (settings ``profile_max_json_bytes``, ``profile_max_events``,
    ``profile_memory_bytes``). The piece of text decoded at once is a 128th of the memory
    budget (4 MiB by default): its decoded events take several times its size, and they
    should stay small against the table the events become."""

    max_json_bytes: int = 2 << 30
    max_events: int = 20_000_000
    memory_bytes: int = 512 << 20

    @classmethod
    def from_settings(cls) -> Limits:
        from workbench.config import load_settings

        s = load_settings()
        return cls(s.profile_max_json_bytes, s.profile_max_events, s.profile_memory_bytes)

    @property
    def piece_bytes(self) -> int:
        return max(1 << 10, self.memory_bytes // 128)

    @property
    def max_piece_bytes(self) -> int:
        """Where a piece that cannot be cut (one huge event) is refused."""
        return max(self.piece_bytes * 2, self.memory_bytes // 4)


# -- the file's bytes --------------------------------------------------------------------------
_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def open_file(path: str | os.PathLike[str]) -> Any:
    """The trace file opened for reading; refused unless it is a regular file. Opened without
    blocking, so a FIFO with no writer is refused at once instead of hanging the reader."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound(f"trace file {str(p)!r} does not exist") from None
    except OSError as exc:
        raise TraceError(f"cannot read trace file {str(p)!r}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise TraceError(f"{str(p)!r} is a folder, not a trace file (give the .json or .json.gz file)")
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise TraceError(f"{str(p)!r} is {kind}, not a regular file; give a trace file (.json or .json.gz)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


def file_blocks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The file's bytes, `READ_BYTES` at a time."""
    with open_file(path) as fh:
        while block := fh.read(READ_BYTES):
            yield block


def content_key(path: str | os.PathLike[str], schema_version: int) -> str:
    """A hash of the file's bytes (read in blocks), so a changed trace is never served stale.
    XXH3 (not a cryptographic hash: the key guards against staleness, not tampering) runs at
    memory speed, where blake2b cost a cold 56 MB ingest a fifth of its time."""
    h = xxhash.xxh3_64()
    for block in file_blocks(path):
        h.update(block)
    return h.hexdigest() + f"v{schema_version}"


def text_blocks(raw_blocks: Iterable[bytes], label: str, max_json_bytes: int) -> Iterator[bytes]:
    """The JSON text in blocks of at most `INFLATE_BYTES`: gunzipped (concatenated members
    too) when the bytes start as gzip does, as they are otherwise; refused past the cap."""
    blocks = iter(raw_blocks)
    first = next(blocks, b"")
    if not first:
        raise TraceError(f"{label} is empty (0 bytes); expected Chrome trace JSON, plain or gzip")
    total = 0

    def counted(text: bytes) -> bytes:
        nonlocal total
        total += len(text)
        if total > max_json_bytes:
            raise TraceError(f"{label} holds more than {max_json_bytes:,} bytes of JSON (the cap is the setting "
                             "profile_max_json_bytes, WORKBENCH_PROFILE_MAX_JSON_BYTES; raise it for a larger trace)")
        return text

    if first[:2] != b"\x1f\x8b":
        yield counted(first)
        for block in blocks:
            yield counted(block)
        return
    d = _gzip.decompressobj(wbits=31)
    try:
        for block in _chain(first, blocks):
            data = block
            while data:
                if d.eof:  # the previous member ended: the next one starts here
                    d = _gzip.decompressobj(wbits=31)
                out = d.decompress(data, INFLATE_BYTES)
                data = d.unused_data if d.eof else d.unconsumed_tail
                if out:
                    yield counted(out)
        while not d.eof and (out := d.decompress(b"", INFLATE_BYTES)):
            yield counted(out)
    except _gzip.error as exc:
        raise TraceError(f"{label} is not a valid gzip file ({exc})") from None
    if not d.eof:
        raise TraceError(f"{label} is a truncated gzip file (the stream ends early); re-copy or re-capture it")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# -- cutting the events into pieces ------------------------------------------------------------
_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_BYTE_AT = re.compile(r"\s*\(byte \d+\)")
_WS = b" \t\r\n"


class Pieces:
    """The events of a trace text, decoded piece by piece.

    `chunks()` yields ``(index of the first event, events)``; afterwards `trace` holds the
    top-level fields (those before ``traceEvents`` and those after it)."""

    def __init__(self, text: Iterable[bytes], label: str, limits: Limits) -> None:
        from workbench.profiles import ingest

        self._ingest = ingest
        self.text = iter(text)
        self.label = label
        self.limits = limits
        self.trace: _Trace = ingest._Trace()
        self.buf = bytearray()
        self.done = False

    def _more(self) -> bool:
        block = next(self.text, None)
        if block is None:
            self.done = True
            return False
        self.buf += block
        return True

    def chunks(self) -> Iterator[tuple[int, list[_Event]]]:
        kind = self._start()
        if kind is None:
            return
        offset = 0
        while True:
            while not self.done and len(self.buf) < self.limits.piece_bytes:
                self._more()
            if self.done:
                break
            events = self._cut(offset)
            if events is None:  # no place to cut yet: take more text
                if len(self.buf) > self.limits.max_piece_bytes:
                    raise TraceError(
                        f"{self.label}: event #{offset} ($.traceEvents[{offset}]) and the text after it are larger than "
                        f"{self.limits.max_piece_bytes // MIB} MiB with no end of an event (a quarter of the setting "
                        "profile_memory_bytes, WORKBENCH_PROFILE_MEMORY_BYTES)")
                self._more()
                continue
            yield offset, events
            offset += len(events)
        yield from self._last(kind, offset)

    def _start(self) -> str | None:
        """Skip leading white space; read the top-level fields before ``traceEvents``."""
        blank = 0
        while True:
            stripped = self.buf.lstrip(_WS)
            if stripped:
                self.buf = bytearray(stripped)
                break
            blank += len(self.buf)
            self.buf.clear()
            if blank > self.limits.max_piece_bytes:
                raise TraceError(f"{self.label} starts with more than {self.limits.max_piece_bytes // MIB} MiB of white "
                                 "space and no JSON; it is not a trace")
            if not self._more():
                raise TraceError(f"{self.label} holds no JSON (only whitespace)")
        head = self.buf[:1]
        if head == b"[":
            return "array"
        if head != b"{":
            raise TraceError(f"{self.label} is not JSON (it does not start with {{ or [); expected a Chrome trace "
                             "object with traceEvents")
        searched = 0
        while (m := _EVENTS_KEY.search(self.buf, max(0, searched - 64))) is None:
            searched = len(self.buf)
            if searched > self.limits.max_piece_bytes:
                raise TraceError(f"{self.label} has no 'traceEvents' list in its first "
                                 f"{self.limits.max_piece_bytes // MIB} MiB; is it a Chrome/Kineto trace?")
            if not self._more():
                self.trace = self._decode_top(bytes(self.buf))
                raise TraceError(f"{self.label} is JSON but has no 'traceEvents' list; is it a Chrome/Kineto trace?")
        self.trace = self._decode_top(bytes(self.buf[: m.start()]) + b'"traceEvents":null}')
        del self.buf[1 : m.end()]  # keep "{" at 0 as the slot for "[" below
        self.buf[0:1] = b"["
        return "object"

    def _decode_top(self, text: bytes) -> _Trace:
        try:
            return self._ingest._DECODER.decode(text)
        except msgspec.ValidationError as exc:
            raise TraceError(f"{self.label}: a top-level field has the wrong type: {exc}") from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise TraceError(f"{self.label} is not valid JSON before its events ({_reason(exc)})") from None

    def _cut(self, offset: int) -> list[_Event] | None:
        """Decode the events up to the last ``},`` that gives valid JSON; drop them from the
        buffer. None when no such place is in the buffer yet."""
        end = len(self.buf)
        for _ in range(16):
            at = self.buf.rfind(b"},", 1, end)
            if at < 0:
                return None
            comma = at + 1
            self.buf[comma] = ord("]")
            try:
                events = self._ingest._CHUNK_DECODER.decode(memoryview(self.buf)[: comma + 1])
            except msgspec.ValidationError as exc:
                self.buf[comma] = ord(",")
                raise _at_event(self.label, exc, offset) from None
            except msgspec.DecodeError as exc:
                self.buf[comma] = ord(",")
                if not _cut_too_early(exc, comma):
                    raise _locate(self.buf, comma, self.label, offset, exc) from None
                end = at
                continue
            except RecursionError as exc:
                self.buf[comma] = ord(",")
                raise _locate(self.buf, comma, self.label, offset, exc) from None
            del self.buf[1 : comma + 1]
            return events
        return None

    def _last(self, kind: str, offset: int) -> Iterator[tuple[int, list[_Event]]]:
        """The rest of the text: the last events and the top-level fields after them."""
        text = bytes(self.buf)
        self.buf = bytearray()
        ingest = self._ingest
        try:
            if kind == "array":
                try:
                    raws = ingest._ARRAY_DECODER.decode(text)
                except msgspec.DecodeError:
                    # The Chrome format allows an unterminated JSON array (a trace cut while writing).
                    raws = ingest._ARRAY_DECODER.decode(text.rstrip(_WS).rstrip(b",") + b"]")
            else:
                tail = ingest._DECODER.decode(b'{"traceEvents":' + text)
                raws = tail.traceEvents
                for name in tail.__struct_fields__:
                    if name != "traceEvents" and getattr(tail, name) is not None:
                        setattr(self.trace, name, getattr(tail, name))
        except msgspec.ValidationError as exc:
            raise TraceError(f"{self.label}: a top-level field has the wrong type: {exc}") from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise _locate(bytearray(text), len(text), self.label, offset, exc) from None
        if raws is None:
            raise TraceError(f"{self.label}: 'traceEvents' is not a list")
        if raws:
            try:
                yield offset, ingest._CHUNK_DECODER.decode(b"[" + b",".join(raws) + b"]")
            except msgspec.ValidationError as exc:
                raise _at_event(self.label, exc, offset) from None
            except (msgspec.DecodeError, RecursionError) as exc:
                raise _locate(bytearray(text), len(text), self.label, offset, exc) from None


def _locate(buf: bytearray, end: int, label: str, offset: int, exc: BaseException) -> TraceError:
    """The error for the first event of ``buf[:end]`` (``[`` and events) that does not decode:
    the events are decoded again, one ``},`` place after another, up to the bad one. Only
    run when the text is bad; linear in its length."""
    decoder = _chunk_decoder()
    good, start = 0, 1
    for m in re.finditer(rb"\},", buf):
        comma = m.start() + 1
        if comma >= end:
            break
        segment = b"[" + bytes(buf[start:comma]) + b"]"
        try:
            good += len(decoder.decode(segment))
            start = comma + 1
        except msgspec.DecodeError as fault:
            if not _cut_too_early(fault, len(segment) - 1):
                break
        except (msgspec.ValidationError, RecursionError):
            break
    return _not_json(label, offset + good, exc)


def _chunk_decoder() -> msgspec.json.Decoder[Any]:
    from workbench.profiles.ingest import _CHUNK_DECODER

    return _CHUNK_DECODER


def _cut_too_early(exc: msgspec.DecodeError, comma: int) -> bool:
    """A cut inside a string reads as "truncated"; inside a nested object the error is at the
    closing bracket we put in; anything earlier is a real fault of the text."""
    text = str(exc)
    if "truncated" in text:
        return True
    m = re.search(r"\(byte (\d+)\)", text)
    return m is not None and int(m.group(1)) >= comma


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested deeper than the decoder's limit"
    return _BYTE_AT.sub("", str(exc)) or type(exc).__name__


def _not_json(label: str, index: int, exc: BaseException) -> TraceError:
    return TraceError(f"{label}: event #{index} ($.traceEvents[{index}]) is not valid JSON: {_reason(exc)}")


def _at_event(label: str, exc: msgspec.ValidationError, offset: int) -> TraceError:
    where = re.sub(r"\$\[(\d+)\]", lambda m: f"$.traceEvents[{offset + int(m.group(1))}]", str(exc))
    return TraceError(f"{label}: an event has a field of the wrong type: {where}")
