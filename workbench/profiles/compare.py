"""Run-vs-run comparison of two event tables: which operators and kernels got slower or faster,
which appeared or vanished (`compare`), by name or by kernel category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.profiles.breakdown import _categories
from workbench.profiles.ingest import GPU_CATEGORIES
from workbench.profiles.masks import _is, _text, complete, valid_duration


# -- run-vs-run -----------------------------------------------------------------------------------


def _totals(df: pd.DataFrame, by: str) -> pd.DataFrame:
    x = complete(df) & valid_duration(df)
    is_gpu = x & _is(df, "cat", GPU_CATEGORIES)
    is_op = x & _is(df, "cat", ("cpu_op",))
    m = is_gpu | is_op
    names = _text(df, "name", m)
    kinds = np.where(is_gpu[m], "kernel", "operator")
    if by == "category":
        keep = kinds == "kernel"
        names = _categories(names[keep], _text(df, "cat", m)[keep])
        kinds = kinds[keep]
        m = np.flatnonzero(m)[keep]
    sub = pd.DataFrame({"kind": kinds, "name": names, "dur_us": df["dur_us"].to_numpy()[m]})
    return sub.groupby(["kind", "name"], sort=False)["dur_us"].agg(count="count", total_us="sum")


def compare(a: pd.DataFrame, b: pd.DataFrame, *, by: str = "name", min_delta_us: float = 10.0,
            tolerance: float = 0.05) -> pd.DataFrame:
    """Operators and kernels of run `a` against run `b`: what got slower or faster, by how much,
    and what appeared (`new`) or vanished.

    `by="name"` compares names; `by="category"` compares the GPU kernels' categories (gemm,
    communication, memory, elementwise, other; useful across GPU generations, whose kernels have
    different names). A row is `slower`/`faster` when its total
    changed by more than `tolerance` and `min_delta_us`, else `same`.
    """
    if by not in ("name", "category"):
        from workbench.errors import InvalidRequest

        raise InvalidRequest(f"compare by={by!r} is not supported; valid: 'name', 'category'")
    ta, tb = _totals(a, by), _totals(b, by)
    j = ta.join(tb, how="outer", lsuffix="_a", rsuffix="_b").fillna(0).reset_index()
    j["count_a"] = j["count_a"].astype(int)
    j["count_b"] = j["count_b"].astype(int)
    j["delta_us"] = j["total_us_b"] - j["total_us_a"]
    with np.errstate(divide="ignore", invalid="ignore"):
        j["ratio"] = np.where(j["total_us_a"] > 0, j["total_us_b"] / j["total_us_a"], np.inf)
    status = np.full(len(j), "same", dtype=object)
    changed = (j["delta_us"].abs() >= min_delta_us) & ((j["ratio"] - 1).abs() > tolerance)
    status[changed & (j["delta_us"] > 0)] = "slower"
    status[changed & (j["delta_us"] < 0)] = "faster"
    status[(j["count_a"] == 0) & (j["count_b"] > 0)] = "new"
    status[(j["count_a"] > 0) & (j["count_b"] == 0)] = "vanished"
    j["status"] = status
    j = j.reindex(j["delta_us"].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)
    return j[["kind", "name", "status", "count_a", "count_b", "total_us_a", "total_us_b", "delta_us", "ratio"]]

