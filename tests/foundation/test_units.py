"""`workbench.units`: the one grammar for durations, sizes, times and JSON values, and its errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from workbench.errors import InvalidRequest
from workbench.units import as_utc, jsonable, parse_duration_s, parse_size_bytes, parse_time_utc

CET = dt.timezone(dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("90", 90), ("90s", 90), ("5m", 300), ("5min", 300), ("2h", 7200), ("1.5d", 129600), ("1w", 604800), ("1 W", 604800)],
)
def test_every_duration_unit(text: str, seconds: float) -> None:
    assert parse_duration_s(text, "--timeout") == seconds


def test_durations_from_numbers_and_timedeltas() -> None:
    assert parse_duration_s(45) == 45
    assert parse_duration_s(dt.timedelta(minutes=2)) == 120


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "--timeout 'soon' is not a duration; a number of seconds or a number with a unit"),
        ("1y", "--timeout '1y' is not a duration"),
        ("", "--timeout is empty"),
        (0, "--timeout '0' is out of range: a duration must be more than 0"),
        ("53w", "--timeout '53w' is out of range"),
        (float("inf"), "--timeout inf is not a finite number"),
        (True, "--timeout True is not a duration"),
    ],
)
def test_bad_durations_say_what_and_why(value: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_duration_s(value, "--timeout")  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512KiB", 512 * 1024), ("512MiB", 512 * 1024**2), ("40GiB", 40 * 1024**3),
        ("512k", 512_000), ("512M", 512 * 10**6), ("40G", 40 * 10**9), ("1.5GB", 1_500_000_000), ("2 g", 2 * 10**9),
    ],
)
def test_every_size_unit(text: str, size: int) -> None:
    assert parse_size_bytes(text, "--memory") == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("40", "--memory '40' is not a size; a number with a unit (B; kB, MB, GB, TB or k, M, G, T"),
        ("40X", "--memory '40X' is not a size"),
        ("0M", "--memory '0M' is out of range: a size is at least 1 byte"),
        ("2000000T", "--memory '2000000T' is out of range"),
        (1.5, "--memory '1.5' is not a size"),
    ],
)
def test_bad_sizes_say_what_and_why(value: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_size_bytes(value, "--memory")  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_as_utc_converts_every_zone_and_takes_naive_times_as_utc() -> None:
    assert as_utc(dt.datetime(2026, 11, 1, 9, tzinfo=CET)) == dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    assert as_utc(dt.datetime(2026, 11, 1, 9, tzinfo=CET)).tzinfo is dt.UTC
    assert as_utc(dt.datetime(2026, 11, 1, 9)) == dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    assert as_utc(None) is None


def test_times_parse_to_utc() -> None:
    assert parse_time_utc("2026-11-01T09:00+01:00") == dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    assert parse_time_utc("2026-11-01") == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_time_utc(dt.datetime(2026, 11, 1, 9, tzinfo=CET)).hour == 8


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "", 20261101])
def test_bad_times_say_what_is_valid(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"--now .*(is not a date and time|is empty); an ISO 8601 date"):
        parse_time_utc(value, "--now")  # type: ignore[arg-type]


def test_jsonable_gives_json_values() -> None:
    at = dt.datetime(2026, 11, 1, 8, 0, 0, 250, tzinfo=dt.UTC)
    value = {"at": at, "pair": (1, 2), 3: np.float32(0.5), "array": np.arange(3), "nested": [{"t": at}], "thing": object}
    assert jsonable(value) == {
        "at": at.isoformat(), "pair": [1, 2], "3": 0.5, "array": [0, 1, 2], "nested": [{"t": at.isoformat()}],
        "thing": repr(object),
    }


def test_jsonable_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(InvalidRequest, match="params cannot be stored as JSON: Integer exceeds 64-bit range"):
        jsonable({"n": 2**70}, "params")
