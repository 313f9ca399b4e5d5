"""Live carbon signals (`carbon_signal = "electricitymaps:DE"` ...) through `load_signal`, over an
`httpx.MockTransport` that answers with the response bodies in `recorded/` (no network)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from workbench import Workbench
from workbench.energy.signal import SignalError, load_signal

RECORDED = Path(__file__).parent / "recorded"
Handler = Callable[[httpx.Request], httpx.Response]


def _replay(name: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    body = (RECORDED / name).read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(answer)


def _window(request: httpx.Request) -> float:
    """Hours between the `start` and `end` a request asks for."""
    start, end = (dt.datetime.fromisoformat(request.url.params[k].replace("Z", "+00:00")) for k in ("start", "end"))
    return (end - start).total_seconds() / 3600


def test_electricity_maps_past_range() -> None:
    seen: list[httpx.Request] = []
    signal = load_signal("electricitymaps:DE", token="em-t0k", transport=_replay("electricitymaps_past_range_DE.json", seen))
    request = seen[0]
    assert request.url.path == "/v3/carbon-intensity/past-range" and request.url.params["zone"] == "DE"
    assert request.headers["auth-token"] == "em-t0k" and _window(request) == 240
    assert signal.zone == "DE" and signal.hours == 24 and not signal.interpolated.any()
    assert signal.start == dt.datetime(2024, 3, 9, 12, tzinfo=dt.UTC)
    rows = json.loads((RECORDED / "electricitymaps_past_range_DE.json").read_text())["data"]
    assert signal.values.tolist() == [r["carbonIntensity"] for r in rows]


def test_watttime_historical_is_converted_to_grams_per_kwh_and_averaged_per_hour() -> None:
    seen: list[httpx.Request] = []
    signal = load_signal("watttime:CAISO_NORTH", token="wt-t0k", transport=_replay("watttime_historical_CAISO_NORTH.json", seen))
    request = seen[0]
    assert request.url.path == "/v3/historical" and request.headers["authorization"] == "Bearer wt-t0k"
    assert request.url.params["region"] == "CAISO_NORTH" and request.url.params["signal_type"] == "co2_moer"
    rows = json.loads((RECORDED / "watttime_historical_CAISO_NORTH.json").read_text())["data"]
    first_hour_lbs = sum(r["value"] for r in rows[:12]) / 12
    assert signal.hours == 3 and signal.values[0] == pytest.approx(first_hour_lbs * 0.453592)
    assert "averaged per hour" in " ".join(signal.issues)


def test_uk_carbon_intensity_uses_the_actual_value_else_the_forecast() -> None:
    seen: list[httpx.Request] = []
    signal = load_signal("ukcarbonintensity", transport=_replay("ukcarbonintensity_intensity.json", seen))
    frm, to = seen[0].url.path.removeprefix("/intensity/").split("/")
    assert dt.datetime.fromisoformat(to) - dt.datetime.fromisoformat(frm) == dt.timedelta(hours=240)
    assert "authorization" not in seen[0].headers and signal.zone == "GB" and signal.hours == 24
    rows = json.loads((RECORDED / "ukcarbonintensity_intensity.json").read_text())["data"]
    last = [r["intensity"] for r in rows[-2:]]
    assert all(i["actual"] is None for i in last)
    assert signal.values[-1] == pytest.approx((last[0]["forecast"] + last[1]["forecast"]) / 2)
    first = [r["intensity"]["actual"] for r in rows[:2]]
    assert signal.values[0] == pytest.approx(sum(first) / 2)


@pytest.mark.parametrize("where", ["electricitymaps:DE", "watttime:CAISO_NORTH"])
def test_a_missing_token_says_which_setting_to_set(where: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(SignalError, match=f"carbon_signal '{where}' needs an API token: set carbon_token"):
        load_signal(where, transport=_replay("electricitymaps_past_range_DE.json", seen))
    assert not seen


def _answer(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        (_answer(401, b'{"message": "Invalid auth-token"}'), r"Electricity Maps .* refused the token \(HTTP 401: .*Invalid auth-token"),
        (_answer(503, b"upstream unavailable"), r"answered HTTP 503: 'upstream unavailable'"),
        (_answer(200, b"<html>maintenance</html>"), r"answered '<html>maintenance</html>', which is not JSON"),
        (_answer(200, b'{"zone": "DE", "history": "none"}'), r"the response has no list of records under 'data'"),
        (_answer(200, b'{"zone": "DE", "data": []}'), r"no rows; a carbon signal needs hourly rows"),
        (_answer(200, b'{"data": [{"datetime": "yesterday", "carbonIntensity": 300}]}'), r"timestamp 'yesterday' is not a date and time"),
    ],
)
def test_bad_responses_are_signal_errors(transport: httpx.MockTransport, message: str) -> None:
    with pytest.raises(SignalError, match=message):
        load_signal("electricitymaps:DE", token="t0k", transport=transport)


def test_unreachable_source_and_unknown_units() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known", request=request)

    with pytest.raises(SignalError, match=r"UK Carbon Intensity .*: cannot reach .* \(ConnectError: Name or service not known\)"):
        load_signal("ukcarbonintensity", transport=httpx.MockTransport(refuse))
    body = b'{"data": [{"point_time": "2024-03-09T12:00:00+00:00", "value": 1.0}], "meta": {"units": "percentile"}}'
    with pytest.raises(SignalError, match="meta.units is 'percentile'; known: lbs_co2_per_mwh, g_co2_per_kwh"):
        load_signal("watttime:CAISO_NORTH", token="t0k", transport=_answer(200, body))


@pytest.mark.parametrize(
    ("where", "message"),
    [("electricitymaps", "carbon_signal 'electricitymaps' names no zone"), ("ukcarbonintensity:DE", "covers Great Britain only")],
)
def test_bad_live_source_names(where: str, message: str) -> None:
    with pytest.raises(SignalError, match=message):
        load_signal(where, token="t0k", transport=_answer(500, b""))


def test_the_carbon_signal_setting_reaches_the_live_sources(tmp_path: Path) -> None:
    """The setting goes through `load_signal`: without a token the first use of the signal says so."""
    with Workbench(home=tmp_path / "h", carbon_signal="electricitymaps:DE") as wb, pytest.raises(SignalError, match="set carbon_token"):
        wb.energy.carbon_g(1.0, dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))
