"""Many ranks at once: one trace per rank ingested as tasks on the workbench's Dask cluster, each
in a CPU slice's worker process, then the multi-rank analyses on what the tasks return.

Why tasks return digests, not tables: a rank's table is hundreds of MB at scale; what the
multi-rank analyses need is its summary, its temporal breakdown and its communication kernels
(a few thousand rows). The table itself stays in the Parquet cache each task writes, so opening
one rank afterwards (`Ranks.profile(rank)`) is a cache read.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import InvalidRequest, NotFound

TRACE_SUFFIXES = (".json", ".json.gz")
_RANK_IN_NAME = re.compile(r"rank[-_]?(\d+)", re.IGNORECASE)


def trace_files(folder_or_paths: str | os.PathLike[str] | list[str | os.PathLike[str]]) -> list[Path]:
    """The trace files of a folder (``*.json``, ``*.json.gz``, sorted), or the paths given."""
    if isinstance(folder_or_paths, str | os.PathLike):
        folder = Path(folder_or_paths)
        if not folder.exists():
            raise NotFound(f"{str(folder)!r} does not exist; give a folder of traces (one per rank) or a list of files")
        if not folder.is_dir():
            return [folder]
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
        if not paths:
            raise InvalidRequest(f"{str(folder)!r} holds no trace files (*.json, *.json.gz)")
        return paths
    paths = [Path(p) for p in folder_or_paths]
    if not paths:
        raise InvalidRequest("no trace files given; give a folder of traces (one per rank) or a list of files")
    return paths


def rank_of(path: Path, distributed_rank: int | None) -> int | None:
    """``distributedInfo.rank`` from the trace, else ``rank[-_]?N`` in the file name."""
    if distributed_rank is not None:
        return distributed_rank
    m = _RANK_IN_NAME.search(path.name)
    return int(m.group(1)) if m else None


def ingest_rank(path: str, fallback_dir: str, limits: Any = None) -> dict[str, Any]:
    """The task: ingest one trace (writing its Parquet cache) and return its digest. Runs in a
    slice's worker process; `peak_rss_bytes` is that process's peak so far."""
    from workbench.profiles.analysis import comm_kernels, hta_breakdown
    from workbench.profiles.table import open_table

    t = open_table(path, fallback_dir=fallback_dir, limits=limits)
    s = t.meta["summary"]
    temporal = hta_breakdown(t.events, t.meta)["temporal"]
    comm = comm_kernels(t.events)
    return {
        "path": str(path), "events": int(s["events"]), "gpu_busy_us": s["gpu_busy_us"], "gpu_idle_share": s["gpu_idle_share"],
        "distributed_rank": t.meta.get("distributed_rank"), "temporal": temporal,
        "comm": {"name": comm["name"].tolist(), "start_us": comm["start_us"].tolist(), "dur_us": comm["dur_us"].tolist()},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


@dataclass
class Ranks:
    """What `wb.profiles.load_ranks` found: a row per rank, the straggler, and the digests."""

    table: pd.DataFrame
    straggler: dict[str, Any] | None
    digests: dict[int, dict[str, Any]] = field(repr=False)
    fallback_dir: Path | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The `workbench profiles ranks --json` object (its contract, exactly)."""
        rows = self.table[["rank", "path", "events", "gpu_busy_us", "gpu_idle_share"]].to_dict("records")
        return {"ranks": [{k: (int(v) if k in ("rank", "events") else v) for k, v in r.items()} for r in rows],
                "straggler": self.straggler}

    def compare(self) -> pd.DataFrame:
        """Each rank against the median rank: the temporal breakdown's parts and their excess."""
        cols = ["gpu_busy_us", "idle_us", "compute_us", "non_compute_us", "comm_us", "wait_caused_us"]
        out = self.table[["rank", *cols]].copy()
        for c in ("gpu_busy_us", "idle_us", "comm_us"):
            out[f"{c}_vs_median"] = out[c] - out[c].median()
        return out

    def profile(self, rank: int) -> Any:
        """The `Profile` of one rank (read from the cache its task wrote)."""
        from workbench.profiles.profile import Profile

        if rank not in self.digests:
            raise NotFound(f"rank {rank} is not among the ranks loaded ({', '.join(map(str, sorted(self.digests)))})")
        return Profile.open(self.digests[rank]["path"], fallback_dir=self.fallback_dir)

    def _repr_html_(self) -> str:
        who = ("no communication kernels, so no straggler" if self.straggler is None else
               f"straggler: rank {self.straggler['rank']} (the others waited {self.straggler['wait_us'] / 1000:,.1f} ms for it)")
        return f"<div class='workbench-ranks'><b>{len(self.table)} ranks</b>; {who}{self.table.to_html(index=False)}</div>"


def analyse(digests: list[dict[str, Any]]) -> Ranks:
    """The multi-rank analyses on the tasks' digests: ranks named, the straggler found."""
    from workbench.profiles.analysis import collective_waits

    by_rank: dict[int, dict[str, Any]] = {}
    unnamed = []
    for d in digests:
        rank = rank_of(Path(d["path"]), d.get("distributed_rank"))
        if rank is None:
            unnamed.append(d["path"])
        elif rank in by_rank:
            raise InvalidRequest(f"two traces claim rank {rank}: {by_rank[rank]['path']!r} and {d['path']!r}; "
                                 "give one trace per rank")
        else:
            by_rank[rank] = d
    if unnamed:
        raise InvalidRequest(f"cannot tell the rank of {unnamed[0]!r}: no distributedInfo.rank in the trace and no "
                             "rank-N in its name (rename it, e.g. trace_rank3.json.gz)")
    comm = {r: pd.DataFrame(d["comm"]) for r, d in by_rank.items()}
    late, caused = collective_waits(comm)
    rows = []
    for rank, d in sorted(by_rank.items()):
        t = d["temporal"]
        rows.append({"rank": rank, "path": d["path"], "events": d["events"], "gpu_busy_us": d["gpu_busy_us"],
                     "gpu_idle_share": d["gpu_idle_share"], "idle_us": t.get("idle_us", 0),
                     "compute_us": t.get("compute_us", 0), "non_compute_us": t.get("non_compute_us", 0),
                     "comm_us": float(comm[rank]["dur_us"].sum()) if len(comm[rank]) else 0.0,
                     "late_arrivals": late[rank], "wait_caused_us": caused[rank], "peak_rss_bytes": d["peak_rss_bytes"]})
    table = pd.DataFrame(rows)
    straggler = None
    if len(by_rank) >= 2 and any(late.values()):
        worst = max(sorted(late), key=lambda r: (late[r], caused[r]))
        straggler = {"rank": worst, "wait_us": caused[worst]}
    return Ranks(table=table, straggler=straggler, digests=by_rank)
