"""`Profile`: one trace, its record in the store, and every analysis as a method."""

from __future__ import annotations

import datetime as dt
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.profiles import analysis
from workbench.profiles.table import TraceTable, open_table


@dataclass
class Profile:
    """A trace and what we know about it. The event table is read on first use (and cached).

    Methods return pandas objects; `timeline()` and `plot(...)` return Bokeh figures.
    """

    id: str | None
    name: str
    path: Path
    owner: str | None = None
    job_id: str | None = None
    device: str | None = None
    framework: str | None = None
    created_at: dt.datetime | None = None
    format: str | None = None
    stored_summary: dict[str, Any] | None = None
    cache_dir: Path | None = field(default=None, repr=False)
    _table: TraceTable | None = field(default=None, repr=False)

    # -- the data -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, name: str | None = None, cache: bool = True,
             fallback_dir: str | os.PathLike[str] | None = None) -> Profile:
        """A profile of a trace file that is not (yet) in the store."""
        p = Path(path)
        t = open_table(p, cache=cache, fallback_dir=fallback_dir)
        return cls(id=None, name=name or p.name, path=p, format=t.meta.get("format"), _table=t)

    @property
    def table(self) -> TraceTable:
        if self._table is None:
            self._table = open_table(self.path, fallback_dir=self.cache_dir)
        return self._table

    @property
    def events(self) -> pd.DataFrame:
        """The event table (schema: `workbench.profiles.ingest`)."""
        return self.table.events

    @property
    def meta(self) -> dict[str, Any]:
        return self.table.meta

    # -- analyses -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The `workbench profiles summary --json` object."""
        if self._table is None and self.stored_summary:
            return self.stored_summary
        return self.table.meta.get("summary") or analysis.summary_of(self.events, self.meta)

    def breakdown(self) -> dict[str, Any]:
        """HolisticTraceAnalysis's temporal and kernel-type breakdowns (its definitions)."""
        return analysis.hta_breakdown(self.events, self.meta)

    def kernels(self) -> pd.DataFrame:
        return analysis.kernels(self.events)

    def kernel_breakdown(self) -> pd.DataFrame:
        return analysis.kernel_breakdown(self.events)

    def idle(self, min_gap_us: float = 100.0, *, per_stream: bool = False) -> pd.DataFrame:
        """Long GPU idle gaps with their host-side cause (see `analysis.idle_gaps`)."""
        return analysis.idle_gaps(self.events, min_gap_us=min_gap_us, per_stream=per_stream)

    def idle_by_stream(self, long_gap_us: float = 100.0) -> pd.DataFrame:
        return analysis.idle_by_stream(self.events, long_gap_us=long_gap_us)

    def launch_delay(self) -> pd.DataFrame:
        return analysis.launch_delay(self.events)

    def launch_delay_stats(self) -> pd.DataFrame:
        return analysis.launch_delay_stats(self.events)

    def overlap(self) -> pd.DataFrame:
        return analysis.comm_compute_overlap(self.events)

    def steps(self) -> pd.DataFrame:
        return analysis.steps(self.events)

    def memory(self) -> pd.DataFrame:
        return analysis.memory_timeline(self.events)

    def compare(self, other: Profile, *, by: str = "name", **kwargs: Any) -> pd.DataFrame:
        """This run (a) against `other` (b): what got slower, faster, appeared or vanished."""
        return analysis.compare(self.events, other.events, by=by, **kwargs)

    # -- views ----------------------------------------------------------------------------------
    def timeline(self, start_us: float | None = None, end_us: float | None = None, **kwargs: Any) -> Any:
        from workbench.profiles.views import timeline

        return timeline(self.events, self.meta, start_us=start_us, end_us=end_us, title=self.name, **kwargs)

    def plot(self, what: str = "kernels", **kwargs: Any) -> Any:
        """A Bokeh figure of one analysis: kernels, breakdown, idle, steps, memory, delay, overlap."""
        from workbench.profiles.views import plot

        return plot(self, what, **kwargs)

    def export(self, path: str | os.PathLike[str], start_us: float | None = None, end_us: float | None = None) -> Path:
        """Write the events in [start_us, end_us) (trace time) as Chrome trace JSON for Perfetto."""
        from workbench.profiles.views import export_slice

        return export_slice(self.path, path, start_us=start_us, end_us=end_us)

    # -- display --------------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "path": str(self.path), "owner": self.owner, "job_id": self.job_id,
            "device": self.device, "framework": self.framework, "format": self.format,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "summary": self.summary(),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Profile {self.id or '(not stored)'} {self.name!r} events={s.get('events', 0):,} "
                f"kernels={s.get('kernels', {}).get('count', 0):,} gpu_idle_share={s.get('gpu_idle_share', 0):.3f}>")

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = {
            "id": self.id or "(not stored)", "path": str(self.path), "owner": self.owner or "–",
            "job": self.job_id or "–", "device": self.device or "–", "framework": self.framework or "–",
            "events": f"{s.get('events', 0):,}",
            "kernels": f"{s['kernels']['count']:,} ({s['kernels']['total_us'] / 1000:,.1f} ms)",
            "CPU ops": f"{s['cpu_ops']['count']:,} ({s['cpu_ops']['total_us'] / 1000:,.1f} ms)",
            "GPU busy / span": f"{s['gpu_busy_us'] / 1000:,.1f} ms / {s['gpu_span_us'] / 1000:,.1f} ms",
            "GPU idle share": f"{100 * s['gpu_idle_share']:.1f} %",
        }
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
        top = "".join(
            f"<tr><td>{html.escape(k['name'][:90])}</td><td>{k['count']:,}</td><td>{k['total_us']:,.0f}</td></tr>"
            for k in s.get("top_kernels", [])[:5]
        )
        kern = (f"<table><tr><th>top kernel</th><th>count</th><th>total µs</th></tr>{top}</table>" if top else "")
        return f"<div class='workbench-profile'><b>Profile {html.escape(self.name)}</b><table>{body}</table>{kern}</div>"
