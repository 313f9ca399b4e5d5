"""`wb.energy`: meters for jobs, carbon of a run, carbon-aware start times, the platform's totals.

The pieces underneath are usable alone: `meter.EnergyMeter` (joules of a run),
`signal.CarbonSignal` (gCO2/kWh over time), `schedule.plan_start` (the pure planner). This
service ties them to the workbench: the configured signal (`carbon_signal`: a file or a live source, else the built-in
series of `carbon_zone`), the inventory (device keys to devices) and the store (JobRow's energy
columns, summed by user and project).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.energy.meter import EnergyMeter, EnergyReading
from workbench.energy.schedule import Deadline, Fits, Plan, plan_start
from workbench.energy.signal import DEFAULT_FORECAST, CarbonSignal, load_signal
from workbench.errors import InvalidRequest
from workbench.units import as_utc

if TYPE_CHECKING:
    import xarray as xr


class EnergyService:
    """Energy and carbon for one `Workbench`; see the module docstring."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self._signal: CarbonSignal | None = None

    # -- the carbon signal --
    @property
    def signal(self) -> CarbonSignal:
        """The configured carbon signal: `carbon_signal` (a CSV or a live source) if set, else the built-in `carbon_zone`."""
        if self._signal is None:
            settings = self.wb.settings
            token = settings.carbon_token.get_secret_value() if settings.carbon_token else None
            self._signal = load_signal(settings.carbon_signal or settings.carbon_zone, token=token)
        return self._signal

    def carbon_g(self, energy_j: float, start: dt.datetime, end: dt.datetime) -> float:
        """gCO2e of `energy_j` joules spent between `start` and `end` under the signal."""
        return self.signal.carbon_g(energy_j, start, end)

    # -- measuring --
    def meter(self, device_keys: str | Sequence[str] | None = None, *, share: float = 1.0, **kwargs: Any) -> EnergyMeter:
        """A meter for devices named by key ("node/0", "node/cpu") or UUID; None: this machine's GPUs, else its CPU."""
        if device_keys is None:
            return EnergyMeter(None, share=share, **kwargs)
        keys = [device_keys] if isinstance(device_keys, str) else list(device_keys)
        inventory = self.wb.devices()
        return EnergyMeter([inventory.device(k) for k in keys], share=share, **kwargs)

    def job_fields(self, reading: EnergyReading) -> dict[str, Any]:
        """The JobRow columns for a finished run: energy_j, avg_power_w, energy_estimated, carbon_g."""
        return {
            "energy_j": reading.energy_j,
            "avg_power_w": reading.avg_power_w,
            "energy_estimated": reading.estimated,
            "carbon_g": self.carbon_g(reading.energy_j, reading.started_at, reading.ended_at),
        }

    # -- planning --
    def plan(
        self,
        duration_s: float,
        deadline: Deadline,
        now: dt.datetime | None = None,
        *,
        forecast: str = DEFAULT_FORECAST,
        fits: Fits | None = None,
    ) -> Plan:
        """When a deferrable job should start: see `workbench.energy.schedule`."""
        now = as_utc(now) if now is not None else dt.datetime.now(dt.timezone.utc)
        return plan_start(
            now=now, duration_s=duration_s, deadline=deadline,
            forecast=self.signal.forecast(forecast, now), fits=fits, forecast_name=forecast,
        )

    def plan_start(
        self,
        duration_s: float,
        deadline: Deadline,
        now: dt.datetime | None = None,
        *,
        forecast: str = DEFAULT_FORECAST,
        fits: Fits | None = None,
    ) -> dt.datetime:
        """The start time (UTC) for a deferrable job; `now` when the forecast is unusable."""
        return self.plan(duration_s, deadline, now, forecast=forecast, fits=fits).start

    # -- the platform view --
    def summary(
        self,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        freq: str | None = None,
    ) -> xr.Dataset:
        """Energy (kWh), carbon (g) and job counts by user and project, for jobs that ended in [start, end).

        With `freq` (a pandas frequency such as "1D") the totals also have a `time` dimension.
        Jobs whose energy was estimated are counted in `estimated_jobs`, so a reader can tell
        measured totals from estimated ones.
        """
        import numpy as np
        import pandas as pd
        import xarray as xr
        from sqlalchemy import select

        from workbench.store.models.jobs import JobRow

        if start is not None and end is not None and as_utc(end) <= as_utc(start):
            raise InvalidRequest(f"period end {end} is not after its start {start}")
        query = select(
            JobRow.owner, JobRow.project, JobRow.ended_at, JobRow.energy_j, JobRow.carbon_g, JobRow.energy_estimated
        ).where(JobRow.energy_j.is_not(None), JobRow.ended_at.is_not(None))
        if start is not None:
            query = query.where(JobRow.ended_at >= as_utc(start))
        if end is not None:
            query = query.where(JobRow.ended_at < as_utc(end))
        with self.wb.store.session() as session:
            rows = session.execute(query).all()
        frame = pd.DataFrame(rows, columns=["user", "project", "ended_at", "energy_j", "carbon_g", "estimated"])
        frame["energy_kwh"] = frame["energy_j"].astype(float) / 3.6e6
        frame["carbon_g"] = frame["carbon_g"].astype(float).fillna(0.0)
        frame["jobs"] = 1
        frame["estimated_jobs"] = frame["estimated"].fillna(False).astype(int)
        keys = ["user", "project"]
        if freq is not None:
            frame["time"] = pd.to_datetime(frame["ended_at"], utc=True).dt.tz_localize(None).dt.floor(freq)
            keys = ["time", *keys]
        variables = ["energy_kwh", "carbon_g", "jobs", "estimated_jobs"]
        if frame.empty:
            coords = {k: np.array([], dtype="datetime64[ns]" if k == "time" else object) for k in keys}
            ds = xr.Dataset({v: (keys, np.zeros((0,) * len(keys))) for v in variables}, coords=coords)
        else:
            grouped = frame.groupby(keys)[variables].sum()
            ds = xr.Dataset.from_dataframe(grouped).fillna(0)
        ds["energy_kwh"].attrs.update(units="kWh", long_name="energy")
        ds["carbon_g"].attrs.update(units="gCO2e", long_name="carbon")
        ds.attrs.update(
            period_start=start.isoformat() if start else "",
            period_end=end.isoformat() if end else "",
            signal=self.signal.zone if self._signal is not None else "",
        )
        return ds

    def close(self) -> None:
        self._signal = None


def plot_summary(ds: xr.Dataset, variable: str = "carbon_g") -> Any:
    """A bar chart of `variable` by user, stacked by project (a matplotlib Figure)."""
    import matplotlib.pyplot as plt
    import numpy as np

    data = ds[variable]
    if "time" in data.dims:
        data = data.sum("time")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    users = [str(u) for u in data["user"].values]
    bottom = np.zeros(len(users))
    for project in data["project"].values:
        heights = data.sel(project=project).values.astype(float)
        ax.bar(users, heights, bottom=bottom, label=str(project))
        bottom += heights
    ax.set_ylabel(f"{data.attrs.get('long_name', variable)} ({data.attrs.get('units', '')})")
    ax.set_xlabel("user")
    ax.legend(title="project", fontsize="small")
    ax.set_title(f"{data.attrs.get('long_name', variable).capitalize()} by user and project")
    fig.tight_layout()
    return fig
