"""Live carbon signals: the vendors' HTTP APIs read into the same hourly `CarbonSignal` as the CSVs.

The `carbon_signal` setting names one (`load_signal` reaches `live_signal`):

    carbon_signal = "electricitymaps:DE"          # Electricity Maps v3, zone DE; token in carbon_token
    carbon_signal = "watttime:CAISO_NORTH"        # WattTime v3 marginal rate (MOER); bearer token in carbon_token
    carbon_signal = "ukcarbonintensity"           # National Grid ESO's Carbon Intensity API (GB); no token

Each fetches the last `HISTORY_H` hours up to now: the planner's forecast is fitted on that past.
The HTTP layer is httpx, so tests hand each adapter an `httpx.MockTransport` that answers with
response bodies written from the vendors' published examples; these requests have never run
against the live services in this project (no network, no accounts). A missing token, a refused
token, an unreachable service and a body that is not the documented shape are `SignalError`s
that name the source and what to fix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx

from workbench.energy.schedule import HOUR_S
from workbench.energy.signal import CarbonSignal, SignalError, from_points
from workbench.units import as_utc, echo

LIVE_SOURCES = {
    "electricitymaps": "Electricity Maps (electricitymaps:ZONE, e.g. electricitymaps:DE; needs carbon_token)",
    "watttime": "WattTime (watttime:REGION, e.g. watttime:CAISO_NORTH; needs carbon_token)",
    "ukcarbonintensity": "the UK Carbon Intensity API (ukcarbonintensity; no token)",
}
HISTORY_H = 240  # 10 days: Electricity Maps' past-range limit for hourly data, and enough to fit a daily cycle
TIMEOUT_S = 30.0
LBS_PER_MWH_TO_G_PER_KWH = 0.453592  # 1 lb = 453.592 g; 1 MWh = 1,000 kWh


def is_live(where: str) -> bool:
    """Whether `where` names a live source (`electricitymaps:DE`) rather than a zone or a file."""
    return where.partition(":")[0].lower() in LIVE_SOURCES


def live_signal(
    where: str,
    *,
    token: str | None = None,
    now: dt.datetime | None = None,
    transport: httpx.BaseTransport | None = None,
    history_h: int = HISTORY_H,
) -> CarbonSignal:
    """The last `history_h` hours of the live source `where` names, up to the hour of `now`."""
    source, _, zone = where.partition(":")
    source = source.lower()
    end = as_utc(now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    start = end - dt.timedelta(seconds=history_h * HOUR_S)
    if source == "ukcarbonintensity":
        if zone:
            raise SignalError(f"carbon_signal {echo(where)}: the UK Carbon Intensity API covers Great Britain only; write 'ukcarbonintensity'")
        with httpx.Client(transport=transport, timeout=TIMEOUT_S) as client:
            return UKCarbonIntensity(client=client).fetch(start, end)
    if source not in ("electricitymaps", "watttime"):
        raise SignalError(f"carbon_signal {echo(where)} is not a live source; valid: {'; '.join(LIVE_SOURCES.values())}")
    if not zone:
        raise SignalError(f"carbon_signal {echo(where)} names no zone; {LIVE_SOURCES[source]}")
    if not token:
        raise SignalError(
            f"carbon_signal {echo(where)} needs an API token: set carbon_token in workbench.toml "
            f"or WORKBENCH_CARBON_TOKEN ({LIVE_SOURCES[source]})"
        )
    with httpx.Client(transport=transport, timeout=TIMEOUT_S) as client:
        if source == "electricitymaps":
            return ElectricityMaps(token=token, zone=zone, client=client).fetch(start, end)
        return WattTime(token=token, region=zone, client=client).fetch(start, end)


def _iso(value: dt.datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get_rows(client: httpx.Client, source: str, url: str, *, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, key: str = "data") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON body of a GET and its list of rows under `key`, or a `SignalError` saying what went wrong."""
    try:
        response = client.get(url, params=params, headers={"Accept": "application/json", **(headers or {})})
    except httpx.HTTPError as exc:
        raise SignalError(f"{source}: cannot reach {url} ({type(exc).__name__}: {exc})") from None
    if response.status_code in (401, 403):
        raise SignalError(
            f"{source} refused the token (HTTP {response.status_code}: {echo(response.text)}); "
            "check carbon_token (WORKBENCH_CARBON_TOKEN) and that the account may read this zone"
        )
    if response.is_error:
        raise SignalError(f"{source}: {url} answered HTTP {response.status_code}: {echo(response.text)}")
    try:
        body = response.json()
    except ValueError:
        raise SignalError(f"{source}: {url} answered {echo(response.text)}, which is not JSON") from None
    rows = body.get(key) if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SignalError(f"{source}: the response has no list of records under {key!r} (got {echo(response.text)})")
    return body, rows


@dataclass
class ElectricityMaps:
    """Electricity Maps API v3, `GET /carbon-intensity/past-range` with the header `auth-token`.

    Lifecycle average intensity in gCO2eq/kWh per zone (e.g. "DE", "US-CAL-CISO"), hourly.
    """

    token: str
    zone: str
    client: httpx.Client
    url: str = "https://api.electricitymap.org/v3"

    def fetch(self, start: dt.datetime, end: dt.datetime) -> CarbonSignal:
        source = f"Electricity Maps {self.url}"
        _, rows = _get_rows(self.client, source, f"{self.url}/carbon-intensity/past-range",
                            params={"zone": self.zone, "start": _iso(start), "end": _iso(end)}, headers={"auth-token": self.token})
        return from_points([r.get("datetime") for r in rows], [r.get("carbonIntensity") for r in rows], zone=self.zone, source=source)


@dataclass
class WattTime:
    """WattTime API v3, `GET /historical` with a bearer token (WattTime's `/login` hands one out for 30 minutes).

    WattTime's signal is the *marginal* rate (MOER) in lbs CO2/MWh every 5 minutes, converted here
    to gCO2/kWh and averaged per hour; it is not an average intensity, so totals differ from
    EIA-based series.
    """

    token: str
    region: str
    client: httpx.Client
    url: str = "https://api.watttime.org/v3"
    signal_type: str = "co2_moer"

    def fetch(self, start: dt.datetime, end: dt.datetime) -> CarbonSignal:
        source = f"WattTime {self.url}"
        body, rows = _get_rows(self.client, source, f"{self.url}/historical", headers={"Authorization": f"Bearer {self.token}"},
                               params={"region": self.region, "start": _iso(start), "end": _iso(end), "signal_type": self.signal_type})
        meta = body.get("meta")
        units = str(meta.get("units", "")) if isinstance(meta, dict) else ""
        if units not in ("lbs_co2_per_mwh", "g_co2_per_kwh"):
            raise SignalError(f"{source}: meta.units is {units!r}; known: lbs_co2_per_mwh, g_co2_per_kwh")
        scale = LBS_PER_MWH_TO_G_PER_KWH if units == "lbs_co2_per_mwh" else 1.0
        values = [r.get("value") for r in rows]
        return from_points(
            [r.get("point_time") for r in rows],
            [v * scale if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values],
            zone=self.region, source=source,
        )


@dataclass
class UKCarbonIntensity:
    """National Grid ESO's Carbon Intensity API, `GET /intensity/{from}/{to}` (no token; at most 14 days a call).

    Half-hourly values are averaged per hour; the actual value is used, the forecast where the
    actual is not published yet.
    """

    client: httpx.Client
    url: str = "https://api.carbonintensity.org.uk"
    zone: str = "GB"

    def fetch(self, start: dt.datetime, end: dt.datetime) -> CarbonSignal:
        source = f"UK Carbon Intensity {self.url}"
        stamp = "%Y-%m-%dT%H:%MZ"  # the API's documented form, YYYY-MM-DDThh:mmZ
        _, rows = _get_rows(self.client, source, f"{self.url}/intensity/{as_utc(start):{stamp}}/{as_utc(end):{stamp}}")
        values = []
        for r in rows:
            intensity = r.get("intensity")
            if not isinstance(intensity, dict):
                raise SignalError(f"{source}: a record has no 'intensity' object ({echo(str(r))})")
            values.append(intensity.get("actual") if intensity.get("actual") is not None else intensity.get("forecast"))
        return from_points([r.get("from") for r in rows], values, zone=self.zone, source=source)
