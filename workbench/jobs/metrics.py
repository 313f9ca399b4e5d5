"""A job's metrics as an xarray Dataset with dimension `step`.

While a job runs its rows are JSON lines (`metrics.jsonl`, appended by the job's context);
when it ends the runner (or the driver, if the worker died) writes `metrics.nc`, NetCDF through
scipy so no extra library is needed. Values that a step did not log are NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.jobs.context import METRICS_JSONL, METRICS_NC

_UNITS = {"time_s": "s", "steps_per_s": "1/s", "host_memory_bytes": "bytes", "device_memory_bytes": "bytes"}


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The rows written so far; a half-written last line (the job is writing) is left out."""
    import orjson

    path = folder / METRICS_JSONL
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            data_ = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data_, list):
            rows.extend(data_)
        else:
            rows.append(data_)
    return rows


def to_dataset(rows: list[dict[str, Any]], attrs: dict[str, Any] | None = None) -> Any:
    """Rows -> Dataset(step); a step logged twice keeps its last values for each variable."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    if not rows:
        ds = xr.Dataset(coords={"step": np.array([], dtype="int64")})
    else:
        frame = pd.DataFrame.from_records(rows)
        frame = frame.groupby("step", sort=True).last()
        frame.index = frame.index.astype("int64")
        ds = xr.Dataset.from_dataframe(frame.astype("float64"))
    for name, unit in _UNITS.items():
        if name in ds:
            ds[name].attrs["units"] = unit
    ds.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
    return ds


def write_netcdf(folder: Path, attrs: dict[str, Any] | None = None) -> Path | None:
    """Turn `metrics.jsonl` into `metrics.nc`; None when the job logged nothing."""
    rows = read_rows(folder)
    if not rows:
        return None
    ds = to_dataset(rows, attrs)
    # NetCDF-3 (scipy) has no 64-bit integers: steps are stored as int32, attributes as strings.
    ds = ds.assign_coords(step=ds["step"].astype("int32"))
    ds.attrs = {k: str(v) for k, v in ds.attrs.items()}
    path = folder / METRICS_NC
    tmp = path.with_suffix(".nc.tmp")
    ds.to_netcdf(tmp, engine="scipy")
    tmp.replace(path)
    return path


def load(folder: Path, *, final: bool, attrs: dict[str, Any] | None = None) -> Any:
    """The Dataset: from `metrics.nc` once the job has ended and it exists, else the live rows."""
    import xarray as xr

    path = folder / METRICS_NC
    if final and path.exists():
        with xr.open_dataset(path, engine="scipy") as ds:
            loaded = ds.load()
        loaded = loaded.assign_coords(step=loaded["step"].astype("int64"))
        loaded.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
        return loaded
    return to_dataset(read_rows(folder), attrs)
