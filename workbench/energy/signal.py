"""Carbon signals: hourly grid carbon intensity (gCO2/kWh) for a location, and where it comes from.

Built in: the 2022 hourly series of eight US balancing authorities in `data/carbon/` (`BUILTIN_ZONES`:
CISO California, ERCO Texas, NYIS New York, and gzip'd AZPS, BPAT, MISO, PJM, SOCO;
HewlettPackard/dc-rl, MIT, derived from EIA-930), read by `load_signal("CISO")` or
`load_signal(path)` for any CSV (or .csv.gz) with the columns `timestamp` and `avg_CI`.

What a file must be, and what happens when it is not:
- Missing hours (empty values, or hours absent from the file) are interpolated linearly in time
  and flagged (`CarbonSignal.interpolated`, `.issues`).
- Timestamps that do not parse, that go backwards or repeat, and values that are negative or
  absurd (above `MAX_CI`, twice the dirtiest real grids) are errors with the row, the value and
  what is valid; `repair=True` (used by the replay benchmark, which must get through any file)
  instead sorts, drops the repeats, treats bad values as missing, and lists each repair in
  `.issues`.
- Sub-hourly data is averaged per hour; naive timestamps are taken to be UTC (and flagged).

A time outside the series (a job run in 2026 against the 2022 series) is mapped to the same hour
of the series' year when the series spans a whole year; `replayed` tells a caller that happened.

Live sources (`electricitymaps:ZONE`, `watttime:REGION`, `ukcarbonintensity`) fetch the same shape
of series from the vendors' HTTP APIs: see `workbench.energy.live`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.energy.forecast import Fitted, fit_forecast
from workbench.energy.schedule import HOUR_S
from workbench.errors import InvalidRequest, NotFound
from workbench.units import as_utc

if TYPE_CHECKING:
    import httpx

MAX_CI = 2000.0  # gCO2/kWh; lignite plants emit about 1,100: twice the worst grid is "absurd"
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "carbon"
BUILTIN_ZONES = {
    "CISO": "California (CAISO)", "ERCO": "Texas (ERCOT)", "NYIS": "New York (NYISO)",
    "AZPS": "Arizona Public Service", "BPAT": "Bonneville Power (hydro)", "MISO": "Midcontinent (MISO)",
    "PJM": "PJM Interconnection", "SOCO": "Southern Company",
}
FORECASTS = ("blend", "persistence", "perfect")
DEFAULT_FORECAST = "blend"


class FittedForecast:
    """The planner's forecast made at one hour (`Forecast`: hour starts in UNIX seconds -> gCO2/kWh),
    with what made it (`method`) and, when the planner should not defer on it, why (`fallback`)."""

    def __init__(self, signal: CarbonSignal, hour_s: float, fitted: Fitted) -> None:
        self.signal, self.hour_s, self.fitted = signal, hour_s, fitted

    @property
    def method(self) -> str:
        return self.fitted.method

    @property
    def fallback(self) -> str | None:
        return self.fitted.fallback

    def __call__(self, hours: np.ndarray) -> np.ndarray:
        lead = np.floor((np.asarray(hours, dtype=float) - self.hour_s) / HOUR_S).astype(np.int64)
        return self.fitted.at_leads(lead)


class SignalError(InvalidRequest):
    """A carbon signal that cannot be read or used as it is."""


@dataclass
class CarbonSignal:
    """An hourly series of gCO2/kWh: `values[i]` holds for the hour starting at `hour0_s + i * 3600`."""

    zone: str
    source: str
    hour0_s: float
    values: np.ndarray
    interpolated: np.ndarray  # bool per hour: filled in, not recorded
    issues: list[str] = field(default_factory=list)
    replayed: bool = False
    _fits: dict[int, Fitted] = field(default_factory=dict, repr=False, compare=False)  # blend forecasts by hour index

    # -- shape --
    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.hour0_s, dt.timezone.utc)

    @property
    def end(self) -> dt.datetime:
        """End of the last hour covered."""
        return dt.datetime.fromtimestamp(self.hour0_s + len(self.values) * HOUR_S, dt.timezone.utc)

    @property
    def hours(self) -> int:
        return len(self.values)

    def to_series(self) -> pd.Series:
        index = pd.date_range(self.start, periods=len(self.values), freq="h", name="timestamp")
        return pd.Series(self.values, index=index, name="avg_CI")

    def to_frame(self) -> pd.DataFrame:
        frame = self.to_series().to_frame()
        frame["interpolated"] = self.interpolated
        return frame

    # -- lookups --
    def _index(self, seconds: np.ndarray) -> np.ndarray:
        """Hour indices for UNIX seconds; -1 outside the series (after mapping into its year)."""
        t = np.asarray(seconds, dtype=float)
        k = np.floor((t - self.hour0_s) / HOUR_S).astype(np.int64)
        outside = (k < 0) | (k >= len(self.values))
        if outside.any() and len(self.values) >= 365 * 24:
            k = np.where(outside, self._same_hour_of_series_year(t), k)
            self.replayed = True
        return np.where((k >= 0) & (k < len(self.values)), k, -1)

    def _same_hour_of_series_year(self, t: np.ndarray) -> np.ndarray:
        """The hour of the series' first year at the same month, day and hour (29 Feb -> 28 Feb)."""
        year = self.start.year
        out = np.empty(t.shape, dtype=np.int64)
        for i, s in enumerate(t.ravel()):
            when = dt.datetime.fromtimestamp(float(s), dt.timezone.utc)
            day = min(when.day, 28) if when.month == 2 else when.day
            mapped = when.replace(year=year, day=day, minute=0, second=0, microsecond=0)
            if mapped < self.start:
                mapped = mapped.replace(year=year + 1)
            out.ravel()[i] = int((mapped.timestamp() - self.hour0_s) // HOUR_S)
        return out

    def at(self, seconds: np.ndarray | float) -> np.ndarray:
        """gCO2/kWh at UNIX seconds (NaN where the series has no value)."""
        k = self._index(np.atleast_1d(np.asarray(seconds, dtype=float)))
        return np.where(k >= 0, self.values[np.maximum(k, 0)], np.nan)

    def intensity(self, when: dt.datetime) -> float:
        return float(self.at(as_utc(when).timestamp())[0])

    def mean_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Time-weighted mean gCO2/kWh over [start, end)."""
        a, b = as_utc(start).timestamp(), as_utc(end).timestamp()
        if b <= a:
            return float(self.at(a)[0])
        edges = np.concatenate(([a], np.arange(math.floor(a / HOUR_S) * HOUR_S + HOUR_S, b, HOUR_S), [b]))
        mids = (edges[:-1] + edges[1:]) / 2
        return float(np.sum(self.at(mids) * np.diff(edges)) / (b - a))

    def carbon_g(self, energy_j: float, start: dt.datetime, end: dt.datetime) -> float:
        """gCO2e of `energy_j` spent evenly over [start, end): kWh x mean intensity."""
        return energy_j / 3.6e6 * self.mean_between(start, end)

    # -- forecasts for the planner --
    def forecast(self, kind: str, now: dt.datetime | float) -> Callable[[np.ndarray], np.ndarray]:
        """`blend` (the default): fitted on the hours observed at `now` (`workbench.energy.forecast`);
        `perfect`: the recorded values; `persistence`: the same hour on the last day observed at `now`."""
        t_now = as_utc(now).timestamp() if isinstance(now, dt.datetime) else float(now)
        if kind == "perfect":
            return self.at
        if kind == "blend":
            current_hour = math.floor(t_now / HOUR_S) * HOUR_S
            k = int(self._index(np.array([current_hour]))[0])
            if k < 0:  # outside a series shorter than a year: no history to fit on
                return lambda hours: np.full(np.shape(hours), np.nan)
            fitted = self._fits.get(k)
            if fitted is None:
                if len(self._fits) > 1024:
                    self._fits.clear()
                fitted = self._fits[k] = fit_forecast(self.values, k)
            return FittedForecast(self, current_hour, fitted)
        if kind == "persistence":
            current_hour = math.floor(t_now / HOUR_S) * HOUR_S

            def persistence(hours: np.ndarray) -> np.ndarray:
                days_ahead = np.floor((np.asarray(hours) - current_hour) / 86400.0) + 1
                return self.at(np.asarray(hours) - np.maximum(days_ahead, 1) * 86400.0)

            return persistence
        raise SignalError(f"forecast {kind!r} is not known; valid: {', '.join(FORECASTS)}")

    def summary(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "source": self.source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "hours": self.hours,
            "interpolated_hours": int(self.interpolated.sum()),
            "mean_ci": float(np.mean(self.values)),
            "min_ci": float(np.min(self.values)),
            "max_ci": float(np.max(self.values)),
            "issues": list(self.issues),
        }

    def __repr__(self) -> str:
        return (
            f"<CarbonSignal {self.zone} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}: {self.hours:,} h, "
            f"mean {np.mean(self.values):.0f} gCO2/kWh, {int(self.interpolated.sum())} h interpolated>"
        )


# -- building a signal from timestamped values -------------------------------------------------


def from_points(
    timestamps: list[Any] | pd.Series | pd.Index,
    values: list[Any] | pd.Series | np.ndarray,
    *,
    zone: str,
    source: str,
    repair: bool = False,
    first_row: int = 2,
) -> CarbonSignal:
    """Validate points (timestamp, gCO2/kWh) and make the hourly series; see the module docstring.

    `first_row` is the file line of the first point, so messages name the line to look at.
    """
    issues: list[str] = []
    raw_times = pd.Series(list(timestamps), dtype=object)
    values_text = pd.Series([None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values], dtype=object)
    numbers = pd.to_numeric(values_text, errors="coerce").astype(float)
    if len(raw_times) == 0:
        raise SignalError(f"{source}: no rows; a carbon signal needs hourly rows of timestamp, avg_CI")
    times = pd.to_datetime(raw_times, errors="coerce", utc=True, format="mixed")
    bad_time = times.isna() & raw_times.notna()
    if bad_time.any():
        i = int(np.flatnonzero(bad_time.to_numpy())[0])
        message = f"{source}: line {first_row + i}: timestamp {raw_times.iloc[i]!r} is not a date and time (e.g. 2022-01-01 00:00:00+00:00)"
        if not repair:
            raise SignalError(message)
        issues.append(f"{int(bad_time.sum())} rows with unreadable timestamps dropped (first: {message})")
    keep = times.notna().to_numpy()
    if not keep.any():
        raise SignalError(f"{source}: no readable timestamps")
    zoned = raw_times[keep].astype(str).str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if not zoned.all():
        issues.append(f"{int((~zoned).sum())} timestamps have no time zone; taken to be UTC")
    times, numbers = times[keep], numbers[keep]
    positions = np.flatnonzero(keep)
    seconds = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    # backwards or repeated timestamps
    step_back = np.flatnonzero(np.diff(seconds) <= 0)
    if step_back.size:
        i = int(step_back[0])
        kind = "repeats" if seconds[i + 1] == seconds[i] else "goes back before"
        message = (
            f"{source}: line {first_row + positions[i + 1]}: timestamp {times.iloc[i + 1]} {kind} "
            f"line {first_row + positions[i]} ({times.iloc[i]}); timestamps must increase"
        )
        if not repair:
            raise SignalError(message + f" ({step_back.size} places in the file)")
        order = np.argsort(seconds, kind="stable")
        seconds, numbers = seconds[order], numbers.iloc[order]
        positions = positions[order]
        first = np.concatenate(([True], np.diff(seconds) > 0))
        repeated = int((~first).sum())
        seconds, numbers, positions = seconds[first], numbers[first], positions[first]
        issues.append(
            f"timestamps out of order in {step_back.size} places: sorted; {repeated} repeated timestamps dropped, "
            f"the first kept (first problem: {message})"
        )
    vals = numbers.to_numpy(dtype=float)
    raw_values = values_text.iloc[positions].to_numpy() if values_text is not None else None
    if raw_values is not None:
        not_number = np.isnan(vals) & pd.notna(raw_values)
        if not_number.any():
            i = int(np.flatnonzero(not_number)[0])
            message = f"{source}: line {first_row + positions[i]}: avg_CI {raw_values[i]!r} is not a number; valid: 0 to {MAX_CI:g} gCO2/kWh, or empty"
            if not repair:
                raise SignalError(message + f" ({int(not_number.sum())} such rows)")
            issues.append(f"{int(not_number.sum())} values that are not numbers treated as missing (first: {message})")
    for label, mask in (("negative", vals < 0), (f"absurd (above {MAX_CI:g} gCO2/kWh)", vals > MAX_CI), ("not finite", np.isinf(vals))):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            message = (
                f"{source}: line {first_row + positions[i]}: avg_CI {vals[i]:g} is {label}; "
                f"valid: 0 to {MAX_CI:g} gCO2/kWh, or empty for a missing hour"
            )
            if not repair:
                raise SignalError(message + f" ({int(mask.sum())} such rows)")
            issues.append(f"{int(mask.sum())} {label.split(' (')[0]} values treated as missing (first: {message})")
            vals = np.where(mask, np.nan, vals)
    # onto the hourly grid: hourly means of what was recorded, then interpolate the gaps
    hour_index = np.floor(seconds / HOUR_S).astype(np.int64)
    hour0 = int(hour_index[0])
    n = int(hour_index[-1]) - hour0 + 1
    offsets = hour_index - hour0
    ok = np.isfinite(vals)
    sums = np.bincount(offsets[ok], weights=vals[ok], minlength=n)
    counts = np.bincount(offsets[ok], minlength=n)
    if (np.bincount(offsets, minlength=n) > 1).any():
        issues.append("more than one value in some hours: averaged per hour")
    with np.errstate(invalid="ignore", divide="ignore"):
        hourly = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    missing = ~np.isfinite(hourly)
    if missing.all():
        raise SignalError(f"{source}: no usable avg_CI values (all empty or invalid)")
    if missing.any():
        known = np.flatnonzero(~missing)
        hourly = np.interp(np.arange(n), known, hourly[known])
        gaps = _runs(missing)
        longest = max(b - a for a, b in gaps)
        issues.append(f"{int(missing.sum())} missing hours in {len(gaps)} gaps (longest {longest} h) interpolated")
    return CarbonSignal(zone=zone, source=source, hour0_s=hour0 * HOUR_S, values=hourly, interpolated=missing, issues=issues)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def read_csv(path: str | Path, *, zone: str | None = None, repair: bool = False) -> CarbonSignal:
    """A signal from a CSV with columns `timestamp` and `avg_CI` (others are ignored)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise NotFound(f"carbon signal file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SignalError(f"{path}: cannot read it as CSV ({exc}); a carbon signal is a CSV with columns timestamp, avg_CI") from None
    frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
    missing = [c for c in ("timestamp", "avg_CI") if c not in frame.columns]
    if missing:
        raise SignalError(f"{path}: no column {', '.join(missing)}; found {', '.join(map(str, frame.columns)) or 'none'}; needs timestamp, avg_CI")
    values = frame["avg_CI"].str.strip().replace("", np.nan)
    name = zone or path.name.split("_")[0].removesuffix(".gz").removesuffix(".csv")
    return from_points(frame["timestamp"].str.strip().replace("", None), values, zone=name, source=str(path), repair=repair)


def builtin_path(zone: str) -> Path:
    key = zone.upper()
    if key not in BUILTIN_ZONES:
        raise NotFound(
            f"carbon zone {zone!r} has no built-in series; valid: "
            + ", ".join(f"{z} ({name})" for z, name in BUILTIN_ZONES.items())
            + ", or give a CSV file (timestamp, avg_CI)"
        )
    plain = DATA_DIR / f"{key}_2022_hourly.csv"
    return plain if plain.exists() else plain.with_name(plain.name + ".gz")


def load_signal(
    where: str | Path, *, repair: bool = False, token: str | None = None, transport: httpx.BaseTransport | None = None
) -> CarbonSignal:
    """A built-in zone ("CISO", "ERCO", "NYIS"), a CSV file path, or a live source
    ("electricitymaps:DE", "watttime:CAISO_NORTH", "ukcarbonintensity": `workbench.energy.live`,
    with `token` for the sources that need one and `transport` for tests)."""
    text = str(where)
    if not isinstance(where, Path):
        from workbench.energy.live import is_live, live_signal  # live imports this module

        if is_live(text):
            return live_signal(text, token=token, transport=transport)
    if text.upper() in BUILTIN_ZONES:
        return read_csv(builtin_path(text), zone=text.upper(), repair=repair)
    path = Path(text)
    if path.suffix.lower() in (".csv", ".gz") or path.exists():
        return read_csv(path, repair=repair)
    return read_csv(builtin_path(text))  # raises NotFound listing the zones
