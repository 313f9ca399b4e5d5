"""Hypothesis properties of the parsers people type into: slice specs, durations, sizes.

Every accepted input round-trips through its canonical form; every refused input gets one line of
our own error type, short enough to read, whatever was typed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import InvalidRequest
from workbench.slices.spec import SliceSpec, canonical, parse_spec
from workbench.units import format_duration_s, format_size_bytes, parse_duration_s, parse_size_bytes

MAX_ERROR_CHARS = 400
_digits = st.text("0123456789", min_size=1, max_size=8)
_number = st.builds(lambda whole, frac: whole + (f".{frac}" if frac else ""), _digits, st.one_of(st.just(""), _digits))
_junk = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="cpugCPUG:.0123456789_-+ eEbBiIkKmMgGtT\uff12\u0663[]/", max_size=40),
)


def _grant(spec: SliceSpec) -> tuple[object, ...]:
    return (spec.kind, spec.cpu_milli, spec.gpu_count, spec.gpu_milli, spec.gpu_memory_bytes, spec.profile)


def _refused_in_one_line(exc: InvalidRequest) -> None:
    message = str(exc)
    assert "\n" not in message and 0 < len(message) <= MAX_ERROR_CHARS, message


_valid_specs = st.one_of(
    st.builds(lambda n: f"cpu:{n}", _number),
    st.builds(lambda n: f"gpu:{n}", _digits),
    st.sampled_from(["cpu", "gpu", "whole", "1g.10gb", "3g.40gb", "7g.80gb", "1g.20gb+me"]),
    st.builds(lambda n: f"0.{n}", _digits),
    st.builds(lambda n, u: f"{n}{u}", _number, st.sampled_from(["B", "kB", "MiB", "GiB", "gb", "TiB"])),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


def _check_spec(text: str | float) -> None:
    try:
        spec = parse_spec(text)
    except InvalidRequest as exc:
        _refused_in_one_line(exc)
        return
    again = parse_spec(canonical(spec))
    assert _grant(again) == _grant(spec), (text, canonical(spec))
    assert spec.cpu_milli in (0,) or spec.cpu_milli >= 100
    assert spec.kind != "fraction" or spec.gpu_memory_bytes or spec.gpu_milli >= 10


@settings(max_examples=400, deadline=None)
@given(_valid_specs)
def test_slice_specs_round_trip_through_their_canonical_form(text: str | float) -> None:
    _check_spec(text)


@settings(max_examples=400, deadline=None)
@given(_junk)
def test_any_text_is_a_slice_spec_or_a_one_line_refusal(text: str) -> None:
    _check_spec(text)


def test_lenient_forms_are_refused() -> None:
    for text in ("cpu:0_5", "cpu:\uff12", "cpu:0.0000001", "cpu:1e3", "cpu:inf", "cpu:nan", "0.001", "1e-3", "gpu:\u0663", "\uff11g.10gb"):
        with pytest.raises(InvalidRequest):
            parse_spec(text)
    assert parse_spec("cpu:0.1").cpu_milli == 100 and parse_spec("0.01").gpu_milli == 10
    assert parse_spec("0.9999").kind == parse_spec(0.99991).kind == "whole"


_valid_durations = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", _number, st.sampled_from(["", "ms", "s", "sec", "m", "min", "h", "hr", "d", "days", "w"])),
    st.floats(min_value=0.001, max_value=1e7),
    st.timedeltas(min_value=dt.timedelta(milliseconds=1), max_value=dt.timedelta(days=300)),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_valid_durations, _junk))
def test_durations_round_trip_or_are_refused_in_one_line(value: str | float | dt.timedelta) -> None:
    try:
        seconds = parse_duration_s(value, "--timeout")
    except InvalidRequest as exc:
        _refused_in_one_line(exc)
        return
    assert 0.001 <= seconds <= 366 * 86400
    assert parse_duration_s(format_duration_s(seconds)) == seconds


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.builds(lambda n, u: f"{n}{u}", _number, st.sampled_from(["b", "kB", "MB", "GiB", "TiB", " mib"])),
                 st.integers(min_value=-(2**70), max_value=2**70), _junk))
def test_sizes_round_trip_or_are_refused_in_one_line(value: str | int) -> None:
    try:
        size = parse_size_bytes(value, "--memory")
    except InvalidRequest as exc:
        _refused_in_one_line(exc)
        return
    assert 1 <= size <= 2**60
    assert parse_size_bytes(format_size_bytes(size)) == size


def test_one_duration_grammar_for_jobs_and_energy() -> None:
    from workbench.energy.schedule import parse_duration_s as energy_duration
    from workbench.jobs.targets import parse_duration

    for text in ("1w", "90s", "1.5d", "250ms"):
        assert parse_duration(text, "--timeout") == energy_duration(text) == parse_duration_s(text)
    for text in ("1_0s", "\uff15m", "inf", "1e3"):
        with pytest.raises(InvalidRequest):
            parse_duration(text, "--timeout")
