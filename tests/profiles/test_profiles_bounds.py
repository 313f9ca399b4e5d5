"""Hostile and broken traces (issue 19, point 1): bounded reading, one clear error that says
what is wrong and at which event, never the file's content, never an exception of another type."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from profiles_helpers import TRACES, kernel

from workbench.errors import NotFound
from workbench.profiles.ingest import Limits, TraceError, parse, parse_file
from workbench.profiles.table import frame, open_table

ROOT = Path(__file__).resolve().parents[2]
TINY = Limits(memory_bytes=64 << 10)  # 1 KiB pieces: every trace below is cut many times


def _cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`workbench profiles ...` in a fresh process; the 10 s timeout is the contract's bound."""
    full_env = {**os.environ, "WORKBENCH_HOME": str(home), **env}
    return subprocess.run([sys.executable, "-m", "workbench", "profiles", *args], capture_output=True, text=True,
                          timeout=10, env=full_env, cwd=ROOT)


def _spaces_bomb(path: Path, gib: int = 4) -> Path:
    """`gib` GiB of spaces in a few MB: one 16 MiB gzip member, repeated (gzip allows that)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = c.compress(b" " * (16 << 20)) + c.flush()
    path.write_bytes(member * (gib * 64))
    return path


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    out = _cli("summary", str(fifo), home=tmp_path / "home")
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "named pipe (FIFO), not a regular file" in out.stderr


# A child forked from this (large) test process starts with this process's peak RSS on Linux (the
# kernel carries the old high-water mark across fork and exec), so the CLI runs under a small
# wrapper interpreter that reports its own child's peak.
_PEAK_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc)\n"
)


def _cli_with_peak(*args: str, home: Path, timeout_s: float = 10.0) -> tuple[int, str, int]:
    """`workbench profiles ...` in a fresh process: exit code, standard error, and that process's
    own peak RSS in KiB."""
    home.mkdir(parents=True, exist_ok=True)
    peak_path = home.parent / "cli.peak_kib"
    done = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, str(peak_path), sys.executable, "-m", "workbench",
                           "profiles", *args], capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "WORKBENCH_HOME": str(home)}, cwd=ROOT)
    return done.returncode, done.stderr, int(peak_path.read_text())


def test_gzip_bomb_is_refused_within_bounds(tmp_path: Path) -> None:
    bomb = _spaces_bomb(tmp_path / "bomb.json.gz")
    assert bomb.stat().st_size < 20 << 20
    returncode, stderr, peak_kib = _cli_with_peak("summary", str(bomb), home=tmp_path / "home")
    assert returncode != 0
    assert stderr.count("\n") == 1 and "white space and no JSON" in stderr
    assert peak_kib < 1 << 20, f"the CLI peaked at {peak_kib / 1024:.0f} MiB"


def test_json_cap_names_its_setting(tmp_path: Path) -> None:
    trace = tmp_path / "t.json.gz"
    trace.write_bytes((TRACES / "alexnet_a100.json.gz").read_bytes())
    out = _cli("summary", str(trace), home=tmp_path / "home", WORKBENCH_PROFILE_MAX_JSON_BYTES="100000")
    assert out.returncode != 0 and out.stderr.count("\n") == 1
    assert "WORKBENCH_PROFILE_MAX_JSON_BYTES" in out.stderr
    assert not list(tmp_path.glob("*.parquet")), "nothing half-written"


def test_bomb_inside_the_events_hits_the_piece_cap(tmp_path: Path) -> None:
    body = b'{"traceEvents": [{"ph": "X"},' + b" " * (4 << 20)
    with pytest.raises(TraceError, match=r"event #1 .* larger than 1 MiB with no end of an event"):
        parse(gzip.compress(body), "t", Limits(memory_bytes=4 << 20))


def test_event_cap_names_its_setting() -> None:
    doc = json.dumps({"traceEvents": [kernel("k", i, 1) for i in range(50)]}).encode()
    with pytest.raises(TraceError, match="more than 10 events .*WORKBENCH_PROFILE_MAX_EVENTS"):
        parse(doc, "t", Limits(max_events=10))


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_devices_are_not_trace_files(path: str) -> None:
    with pytest.raises(TraceError, match="character device, not a regular file"):
        open_table(path, cache=False)


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="is a folder"):
        open_table(tmp_path, cache=False)
    with pytest.raises(NotFound):
        open_table(tmp_path / "none.json", cache=False)


_EVENTS = [{"ph": "X", "cat": "cpu_op", "name": f"op{i}", "pid": 1, "tid": 1, "ts": i, "dur": 1,
            "args": {"note": "a },{ in a string", "nested": [{"a": 1}, {"b": 2}]}} for i in range(400)]


@pytest.mark.parametrize("bad, message", [
    (b'{"ph": "X", "pid": 123456789012345678901234567890}', r"\$\.traceEvents\[300\]\.pid\) is an integer beyond 64 bits"),
    (b'{"ph": "X", "ts": 1, "dur": 1e308}', r"\$\.traceEvents\[300\]\.dur\) is out of range"),
    (b'{"ph": "X", "ts": -1e308}', r"\$\.traceEvents\[300\]\.ts\) is out of range"),
    (b'{"ph": "X", "args": {"grid": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
     r"event #300 .* nested deeper than the decoder's limit"),
    (b'{"ph": "X", "name": "\xff\xfe"}', r"event #300 .* Invalid UTF-8"),
    (b'{"ph": "X", "dur": "long"}', r"\$\.traceEvents\[300\]\.dur"),
    (b'{"ph": "X", "ts": tru}', r"event #300 .* not valid JSON"),
])
@pytest.mark.parametrize("limits", [TINY, Limits()], ids=["pieces", "whole"])
def test_bad_values_are_reported_at_their_event(bad: bytes, message: str, limits: Limits) -> None:
    good = json.dumps({"traceEvents": _EVENTS}).encode()
    at = good.index(b'{"ph": "X", "cat": "cpu_op", "name": "op300"')
    doc = good[:at] + bad + b", " + good[at:]
    with pytest.raises(TraceError, match=message):
        parse(doc, "t", limits)


def test_pieces_give_the_same_table_as_one_piece() -> None:
    for name in ("train_a100_rank0.json.gz", "cpu_only.json.gz", "sampled_rank0.json.gz"):
        whole = frame(parse_file(TRACES / name))
        cut = frame(parse_file(TRACES / name, TINY))
        assert cut.equals(whole), name


def test_errors_never_quote_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n")
    with pytest.raises(TraceError) as info:
        open_table(secret, cache=False)
    assert "daemon" not in str(info.value) and "20228" not in str(info.value)
    half = tmp_path / "half.json"
    half.write_text('{"traceEvents": [{"ph": "X", "name": "root:*:20228"}, {"name": "root:*:20228')
    with pytest.raises(TraceError) as info:
        open_table(half, cache=False)
    assert "20228" not in str(info.value) and "event #1" in str(info.value)
