"""Row masks over an event table (schema in `workbench.profiles.ingest`): which rows are complete,
have a valid duration, are GPU work, and on which device. Shared by every analysis module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.profiles.ingest import GPU_CATEGORIES


def _is(df: pd.DataFrame, column: str, values: str | Sequence[str]) -> np.ndarray:
    col = df[column]
    if isinstance(values, str):
        out: np.ndarray = (col == values).to_numpy(dtype=bool, na_value=False)
        return out
    out = col.isin(values).to_numpy(dtype=bool)
    return out


def _text(df: pd.DataFrame, column: str, mask: Any) -> np.ndarray:
    """The strings of a categorical column at `mask`, as an object array ('' where missing).

    (Never `.astype(str)`: numpy would make a fixed-width array as wide as the longest name.)"""
    col = df[column]
    codes = col.cat.codes.to_numpy()[mask]
    cats = np.append(col.cat.categories.to_numpy(dtype=object), "")
    return cats[np.where(codes < 0, len(cats) - 1, codes)]


def valid_duration(df: pd.DataFrame) -> np.ndarray:
    d = df["dur_us"].to_numpy()
    t = df["ts_us"].to_numpy()
    out: np.ndarray = np.isfinite(d) & (d >= 0) & np.isfinite(t)
    return out


def complete(df: pd.DataFrame) -> np.ndarray:
    return _is(df, "ph", "X")


def contract_gpu_events(df: pd.DataFrame) -> np.ndarray:
    """The summary contract's GPU work: ph X with cat kernel, gpu_memcpy or gpu_memset."""
    out: np.ndarray = complete(df) & _is(df, "cat", GPU_CATEGORIES) & valid_duration(df)
    return out


def gpu_events(df: pd.DataFrame) -> np.ndarray:
    """GPU work for the analyses: the contract's, plus JAX/XLA device-lane events (no category,
    a device assigned at ingest)."""
    lanes = complete(df) & df["cat"].isna().to_numpy() & (df["device"].to_numpy() >= 0) & valid_duration(df)
    out: np.ndarray = contract_gpu_events(df) | lanes
    return out


def gpu_device(df: pd.DataFrame) -> np.ndarray:
    dev = df["device"].to_numpy().astype(np.int64)
    out: np.ndarray = np.where(dev >= 0, dev, df["pid"].to_numpy())
    return out

