"""Carbon signals: the built-in series, bad files and forecasts (the live sources: test_energy_live.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from workbench.energy.signal import SignalError, load_signal, read_csv
from workbench.errors import NotFound

UTC = dt.timezone.utc


def _csv(tmp_path: Path, rows: list[tuple[str, str]], name: str = "grid.csv") -> Path:
    path = tmp_path / name
    path.write_text("timestamp,avg_CI\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def _hours(n: int, start: str = "2022-03-01T00:00:00+00:00") -> list[str]:
    t0 = dt.datetime.fromisoformat(start)
    return [(t0 + dt.timedelta(hours=i)).isoformat() for i in range(n)]


def test_builtin_series_load_and_flag_their_missing_hours() -> None:
    ciso = load_signal("ciso")
    assert ciso.zone == "CISO" and ciso.hours == 8760
    assert int(ciso.interpolated.sum()) == 3  # the three empty rows of the file
    k = int(np.flatnonzero(ciso.interpolated)[0])
    assert ciso.values[k] == pytest.approx((ciso.values[k - 1] + ciso.values[k + 1]) / 2)
    assert "3 missing hours" in ciso.issues[0]
    for zone in ("ERCO", "NYIS"):
        s = load_signal(zone)
        assert s.hours == 8760 and not s.interpolated.any() and 50 < s.values.mean() < 800


def test_unknown_zone_names_the_valid_ones() -> None:
    with pytest.raises(NotFound, match="CISO.*ERCO.*NYIS"):
        load_signal("MARS")


def test_gaps_and_absent_hours_are_interpolated_and_flagged(tmp_path: Path) -> None:
    times = _hours(10)
    rows = [(t, str(100 + 10 * i)) for i, t in enumerate(times)]
    rows[3] = (times[3], "")
    del rows[6:8]  # two hours absent from the file
    s = read_csv(_csv(tmp_path, rows))
    assert s.hours == 10
    assert s.interpolated.tolist() == [False, False, False, True, False, False, True, True, False, False]
    assert s.values.tolist() == pytest.approx([100 + 10 * i for i in range(10)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows.insert(5, rows[2]), "line 7: timestamp .* goes back before line 6"),
        (lambda rows: rows.insert(5, rows[4]), "line 7: timestamp .* repeats line 6"),
        (lambda rows: rows.__setitem__(4, (rows[4][0], "-3")), "line 6: avg_CI -3 is negative"),
        (lambda rows: rows.__setitem__(4, (rows[4][0], "99999")), "line 6: avg_CI 99999 is absurd"),
        (lambda rows: rows.__setitem__(4, (rows[4][0], "n/a")), "line 6: avg_CI 'n/a' is not a number"),
        (lambda rows: rows.__setitem__(4, ("yesterday", "100")), "line 6: timestamp 'yesterday' is not a date"),
    ],
)
def test_bad_files_are_clear_errors_and_repairable(tmp_path: Path, change, message: str) -> None:
    rows = [(t, "200") for t in _hours(12)]
    change(rows)
    path = _csv(tmp_path, rows)
    with pytest.raises(SignalError, match=message):
        read_csv(path)
    repaired = read_csv(path, repair=True)
    assert repaired.issues and np.all(repaired.values == 200)


def test_file_without_the_columns_or_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("time,ci\n2022-01-01,3\n")
    with pytest.raises(SignalError, match="no column timestamp, avg_CI; found time, ci"):
        read_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("")
    with pytest.raises(SignalError, match="cannot read it as CSV"):
        read_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("timestamp,avg_CI\n")
    with pytest.raises(SignalError, match="no rows"):
        read_csv(tmp_path / "c.csv")
    with pytest.raises(NotFound, match="does not exist"):
        read_csv(tmp_path / "missing.csv")


def test_naive_and_subhourly_timestamps(tmp_path: Path) -> None:
    rows = [("2023-05-01 00:00", "100"), ("2023-05-01 00:30", "200"), ("2023-05-01 01:00", "300"), ("2023-05-01 01:30", "400")]
    s = read_csv(_csv(tmp_path, rows))
    assert s.values.tolist() == [150.0, 350.0]
    assert s.start == dt.datetime(2023, 5, 1, tzinfo=UTC)
    assert any("no time zone" in i for i in s.issues) and any("averaged" in i for i in s.issues)


def test_carbon_of_a_run_is_energy_times_mean_intensity(tmp_path: Path) -> None:
    s = read_csv(_csv(tmp_path, [(t, v) for t, v in zip(_hours(3), ("100", "300", "500"), strict=True)]))
    start = dt.datetime(2022, 3, 1, 0, 30, tzinfo=UTC)
    end = dt.datetime(2022, 3, 1, 2, 0, tzinfo=UTC)
    assert s.mean_between(start, end) == pytest.approx((100 * 0.5 + 300) / 1.5)
    assert s.carbon_g(3.6e6, start, end) == pytest.approx((100 * 0.5 + 300) / 1.5)  # 1 kWh


def test_persistence_forecast_is_the_last_observed_day(tmp_path: Path) -> None:
    values = [str(i) for i in range(72)]
    s = read_csv(_csv(tmp_path, list(zip(_hours(72), values, strict=True))))
    now = s.hour0_s + 30 * 3600 + 600  # 06:10 on day 2
    hours = s.hour0_s + np.array([30, 47, 48, 53, 54]) * 3600.0
    # observed by 06:10 on day 2: every hour up to 05:00 that day; the current hour 06:00 is not
    assert s.forecast("persistence", now)(hours).tolist() == [6, 23, 24, 29, 6]
    assert s.forecast("perfect", now)(hours).tolist() == [30, 47, 48, 53, 54]
    with pytest.raises(SignalError, match="valid: blend, persistence, perfect"):
        s.forecast("crystal-ball", now)


def test_a_time_outside_a_yearly_series_maps_to_the_same_hour_of_its_year() -> None:
    s = load_signal("ERCO")
    assert s.intensity(dt.datetime(2026, 7, 1, 15, 20)) == s.intensity(dt.datetime(2022, 7, 1, 15))
    assert s.replayed
