"""One grammar each for durations, sizes, times and JSON values: strict and bounded, with a canonical form.

Python's own parsers are too lenient for what people type: `float("0_5")` is 5.0, `float("２")` is
2.0 (a full-width digit), `re`'s `\\d` matches any Unicode digit, and `float("1e400")` is inf. Every
number here is ASCII digits with an optional decimal part, checked by one regular expression, and
every value has bounds, so what a user typed either means one thing or gets a one-line error that
quotes at most `ECHO_CHARS` characters of it.

Durations resolve to whole milliseconds and sizes to whole bytes; `format_duration_s` and
`format_size_bytes` write the canonical form that parses back to the same value. Times are
timezone-aware UTC (`as_utc`, `parse_time_utc`), and `jsonable` turns what a caller hands over
(datetimes, numpy numbers, tuples) into the JSON values the store keeps.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any, overload

import orjson

from workbench.errors import InvalidRequest

ECHO_CHARS = 80
MAX_INPUT_CHARS = 80
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_RE = re.compile(rf"({NUMBER}) *(ms|s|sec|m|min|h|hr|d|day|days|w)?", re.ASCII | re.IGNORECASE)
_SIZE_RE = re.compile(rf"({NUMBER}) *(b|kb|mb|gb|tb|kib|mib|gib|tib|k|m|g|t)", re.ASCII | re.IGNORECASE)
_DURATION_UNIT_S = {
    "ms": Decimal("0.001"), "s": Decimal(1), "sec": Decimal(1), "m": Decimal(60), "min": Decimal(60),
    "h": Decimal(3600), "hr": Decimal(3600), "d": Decimal(86400), "day": Decimal(86400), "days": Decimal(86400),
    "w": Decimal(604800),
}
SIZE_UNIT_BYTES = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,  # SI prefixes alone, as in Kubernetes quantities: 512M is 512 MB
}
MIN_DURATION_S = 0.001
MAX_DURATION_S = 366 * 86400.0  # a year: longer is a typo, and timedelta arithmetic stays far from its limits
MAX_SIZE_BYTES = 2**60  # 1 EiB: larger than any device or disk, and well inside a 64-bit database column
DURATION_HELP = "a number of seconds or a number with a unit (ms, s, m, min, h, d, w), e.g. 90s, 5m, 8h"
TIME_HELP = "an ISO 8601 date or date and time, e.g. 2026-11-01 or 2026-11-01T08:00+01:00 (UTC when no zone is given)"
SIZE_HELP = "a number with a unit (B; kB, MB, GB, TB or k, M, G, T: powers of 1000; KiB, MiB, GiB, TiB: of 1024), e.g. 512MiB or 40GiB"


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr` of what a user gave, cut to `limit` characters with an ellipsis, for error messages."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return repr(text[: limit - 1]) + f"… ({len(text):,} characters)"
    return repr(text)


def strict_text(value: str, what: str, help_text: str) -> str:
    """`value` stripped, or `InvalidRequest` when it is empty or longer than any valid input."""
    text = value.strip()
    if not text:
        raise InvalidRequest(f"{what} is empty; {help_text}")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidRequest(f"{what} {echo(text)} is too long to be valid (at most {MAX_INPUT_CHARS} characters); {help_text}")
    return text


def _finite_number(value: float, what: str, help_text: str) -> Decimal:
    if not math.isfinite(value):
        raise InvalidRequest(f"{what} {value!r} is not a finite number; {help_text}")
    return Decimal(repr(float(value)))


def parse_duration_s(value: float | str | dt.timedelta, what: str = "duration") -> float:
    """Seconds, to the millisecond, from `30` (seconds), `"90s"`, `"5m"`, `"1.5d"`, `"1w"` or a timedelta.

    Between `MIN_DURATION_S` and `MAX_DURATION_S`; anything else raises `InvalidRequest`.
    """
    if isinstance(value, bool):
        raise InvalidRequest(f"{what} {value!r} is not a duration; {DURATION_HELP}")
    if isinstance(value, dt.timedelta):
        seconds = Decimal(value.days * 86400 + value.seconds) + Decimal(value.microseconds) / 10**6
    elif isinstance(value, (int, float)):
        seconds = _finite_number(value, what, DURATION_HELP)
    elif isinstance(value, str):
        text = strict_text(value, what, DURATION_HELP)
        m = _DURATION_RE.fullmatch(text)
        if m is None:
            raise InvalidRequest(f"{what} {echo(text)} is not a duration; {DURATION_HELP}")
        seconds = Decimal(m.group(1)) * _DURATION_UNIT_S[(m.group(2) or "s").lower()]
    else:
        raise InvalidRequest(f"{what} {echo(value)} is not a duration; {DURATION_HELP}")
    if seconds < Decimal("0.001") or seconds > Decimal(repr(MAX_DURATION_S)):
        raise InvalidRequest(
            f"{what} {echo(value if isinstance(value, str) else str(value))} is out of range: "
            f"a duration must be more than 0 (at least 1 ms) and at most {MAX_DURATION_S / 86400:g} days"
        )
    return int((seconds * 1000).to_integral_value(rounding="ROUND_HALF_EVEN")) / 1000


def format_duration_s(seconds: float) -> str:
    """The canonical form of a duration: seconds with up to three decimals and the unit, e.g. `"90s"`."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def format_significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, positional (`0.0000264`, `31.5`, `1,234`), never `2.64e-05`.

    Measured figures (energy, carbon) carry a few meaningful digits; more is noise, and an
    exponent hides the size of a number from the reader of a table.
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits - 1}e}")  # first, so that 0.99999 becomes 1.00, not 1.000
    decimals = max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)
    return f"{rounded:,.{decimals}f}"


def format_energy_j(energy_j: float, *, estimated: bool = False) -> str:
    """Energy for people, in every face: watt-hours to three significant digits, with the unit
    (`0.0264 Wh`, `31.5 Wh`); `(estimated)` when the meter estimated it (no power sensor)."""
    return f"{format_significant(energy_j / 3600)} Wh" + (" (estimated)" if estimated else "")


def parse_size_bytes(value: int | str, what: str = "size") -> int:
    """Whole bytes from `"512MiB"`, `"40GiB"`, `"1.5GB"` (rounded up to a byte) or a whole number of bytes.

    At least 1 byte and at most `MAX_SIZE_BYTES`; anything else raises `InvalidRequest`.
    """
    if isinstance(value, bool):
        raise InvalidRequest(f"{what} {value!r} is not a size; {SIZE_HELP}")
    if isinstance(value, int):
        size = Decimal(value)
    elif isinstance(value, str):
        text = strict_text(value, what, SIZE_HELP)
        m = _SIZE_RE.fullmatch(text)
        if m is None:
            raise InvalidRequest(f"{what} {echo(text)} is not a size; {SIZE_HELP}")
        size = Decimal(m.group(1)) * SIZE_UNIT_BYTES[m.group(2).lower()]
    else:
        raise InvalidRequest(f"{what} {echo(value)} is not a size; {SIZE_HELP}")
    if size < 1 or size > MAX_SIZE_BYTES:
        raise InvalidRequest(f"{what} {echo(value if isinstance(value, str) else str(value))} is out of range: "
                             f"a size is at least 1 byte and at most {MAX_SIZE_BYTES:,} bytes (1 EiB)")
    return int(size.to_integral_value(rounding="ROUND_CEILING"))


def format_size_bytes(size: int) -> str:
    """The canonical form of a size: whole bytes and the unit, e.g. `"1073741824B"`."""
    return f"{size}B"


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: dt.datetime | None) -> dt.datetime | None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """`value` as a timezone-aware UTC datetime: a naive one is taken to be UTC (SQLite returns
    naive datetimes, and every time the workbench stores is UTC); any other zone is converted."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_time_utc(value: str | dt.datetime, what: str = "time") -> dt.datetime:
    """A UTC datetime from an ISO 8601 date or date and time (`2026-11-01`, `2026-11-01T08:00+01:00`;
    UTC when it names no zone) or a datetime; anything else raises `InvalidRequest`."""
    if isinstance(value, dt.datetime):
        return as_utc(value)
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} {echo(value)} is not a date and time; {TIME_HELP}")
    text = strict_text(value, what, TIME_HELP)
    try:
        return as_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        raise InvalidRequest(f"{what} {echo(text)} is not a date and time; {TIME_HELP}") from None


def jsonable(value: Any, what: str = "value") -> Any:
    """`value` as JSON values (dicts with string keys, lists, strings, numbers, booleans, None), as
    the store's JSON columns and `--json` keep them: datetimes become ISO 8601 strings, tuples
    lists, numpy numbers and arrays numbers and lists, and anything else its `repr`.

    orjson does the walk (in C, with the numpy and datetime cases built in); an integer beyond
    64 bits or nesting deeper than 254 levels raises `InvalidRequest`.
    """
    try:
        return orjson.loads(orjson.dumps(value, default=repr, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(f"{what} cannot be stored as JSON: {exc}") from None


MAX_NAME_CHARS = 200  # the store's name columns (owner, project, job name) are VARCHAR(200)
MAX_PRIORITY = 10**6
MAX_RETRIES = 100


def check_name(value: str, what: str) -> str:
    """A project, owner or job name: non-empty text of at most `MAX_NAME_CHARS` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{what} must be a non-empty string, not {echo(value)}")
    if len(value) > MAX_NAME_CHARS:
        raise InvalidRequest(f"{what} {echo(value)} is too long: at most {MAX_NAME_CHARS} characters")
    return value


def check_priority(value: int, what: str = "priority") -> int:
    """A whole number within ±`MAX_PRIORITY`: enough levels for any policy, and inside every integer column."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{what} must be a whole number, not {echo(value)}")
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidRequest(f"{what} {echo(str(value))} is out of range: from {-MAX_PRIORITY:,} to {MAX_PRIORITY:,}")
    return value


def check_retries(value: int) -> int:
    """A whole number of retries from 0 to `MAX_RETRIES`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise InvalidRequest(f"retries must be a whole number from 0 to {MAX_RETRIES}, not {echo(str(value))}")
    return value
