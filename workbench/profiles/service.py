"""`ProfileService` (`wb.profiles`): load, register, find, analyse and capture profiles."""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import NotFound
from workbench.profiles.profile import Profile

if TYPE_CHECKING:
    from workbench.profiles.capture import Capture
    from workbench.profiles.ranks import Ranks

ProfileRef = Profile | str | os.PathLike[str]


class ProfileService:
    """Profiles of one Workbench: rows in the store, traces on disk, analyses on demand."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb

    @property
    def cache_dir(self) -> Path:
        """Where Parquet caches go when a trace's own folder is read-only."""
        return Path(self.wb.settings.home) / "cache" / "profiles"

    # -- registering ---------------------------------------------------------------------------
    def load(self, path: str | os.PathLike[str], *, name: str | None = None, owner: str | None = None,
             job_id: str | None = None, device: str | None = None, framework: str | None = None) -> Profile:
        """Ingest a trace file (validating it) and register it in the store."""
        return self.register(path, name=name, owner=owner, job_id=job_id, device=device, framework=framework)

    def register(self, path: str | os.PathLike[str], name: str | None = None, owner: str | None = None,
                 job_id: str | None = None, device: str | None = None, framework: str | None = None) -> Profile:
        """Register a trace file (e.g. one a job captured). It is read once here, so a broken
        trace is refused now, not when someone opens it later."""
        from workbench.store.models.base import new_id, utcnow
        from workbench.store.models.profiles import ProfileRow

        p = Path(path).expanduser().resolve()
        prof = Profile.open(p, name=name, fallback_dir=self.cache_dir)
        meta = prof.meta
        row = ProfileRow(
            id=new_id("prof"), name=name or p.name, owner=owner or self.wb.user, job_id=job_id,
            device=device or _device_from_meta(meta), framework=framework or _framework_from_meta(meta),
            path=str(p), format=meta.get("format") or "chrome", events=int(meta.get("events", 0)),
            summary=prof.summary(), created_at=utcnow(),
        )
        with self.wb.store.session() as s:
            s.add(row)
        return self._from_row(row, table=prof._table)

    # -- finding -------------------------------------------------------------------------------
    def get(self, profile_id: str) -> Profile:
        from workbench.store.models.profiles import ProfileRow

        with self.wb.store.session() as s:
            row = s.get(ProfileRow, profile_id)
            if row is None:
                raise NotFound(f"profile {profile_id!r} does not exist (see `workbench profiles list`)")
            return self._from_row(row)

    def list(self, owner: str | None = None, job_id: str | None = None) -> list[Profile]:
        from sqlalchemy import select

        from workbench.store.models.profiles import ProfileRow

        q = select(ProfileRow).order_by(ProfileRow.created_at.desc())
        if owner is not None:
            q = q.where(ProfileRow.owner == owner)
        if job_id is not None:
            q = q.where(ProfileRow.job_id == job_id)
        with self.wb.store.session() as s:
            return [self._from_row(r) for r in s.scalars(q)]

    def resolve(self, ref: ProfileRef) -> Profile:
        """A Profile from a Profile, a stored id, or a trace file path (not registered)."""
        if isinstance(ref, Profile):
            return ref
        text = os.fspath(ref)
        if isinstance(ref, str) and ref.startswith("prof-") and not Path(text).exists():
            return self.get(ref)
        if not Path(text).exists():
            if isinstance(ref, str) and "/" not in ref and not ref.endswith((".json", ".gz")):
                return self.get(ref)
            raise NotFound(f"{text!r} is neither a trace file nor a profile id")
        return Profile.open(text, fallback_dir=self.cache_dir)

    # -- analyses ------------------------------------------------------------------------------
    def summary(self, path_or_id: ProfileRef) -> dict[str, Any]:
        ref = path_or_id
        if not isinstance(ref, Profile) and Path(os.fspath(ref)).exists():
            from workbench.profiles.table import summarize

            return summarize(os.fspath(ref), fallback_dir=self.cache_dir)
        return self.resolve(ref).summary()

    def breakdown(self, path_or_id: ProfileRef) -> dict[str, Any]:
        return self.resolve(path_or_id).breakdown()

    def compare(self, a: ProfileRef, b: ProfileRef, *, by: str = "name", **kwargs: Any) -> pd.DataFrame:
        return self.resolve(a).compare(self.resolve(b), by=by, **kwargs)

    def stragglers(self, ranks: dict[int, ProfileRef] | builtins.list[ProfileRef]) -> pd.DataFrame:
        """Multi-rank comparison: which rank the others wait for (see `analysis.stragglers`)."""
        from workbench.profiles.analysis import stragglers

        items = ranks.items() if isinstance(ranks, dict) else enumerate(ranks)
        return stragglers({int(r): self.resolve(p).events for r, p in items})

    def load_ranks(self, folder_or_paths: str | os.PathLike[str] | builtins.list[str | os.PathLike[str]], *,
                   parallel: int | None = None, slice_spec: str = "cpu:1", limits: Any = None) -> Ranks:
        """Ingest one trace per rank as tasks on the workbench's Dask cluster, then the
        multi-rank analyses: per-rank summary and temporal breakdown, the straggler (the rank
        the others wait for at collectives) and by how much (`Ranks`).

        Each task runs in the worker of a CPU slice (`slice_spec`, `parallel` of them at most:
        default one per trace up to this machine's cores), so it is placed and accounted for
        like a job; each ingest is bounded by the settings' `profile_*` caps (or `limits`).
        The slices are released when the traces are read. The rank of a trace is its
        ``distributedInfo.rank``, else ``rank[-_]?N`` in its file name."""
        import uuid

        from workbench.errors import Conflict
        from workbench.jobs.backend import slice_resource
        from workbench.profiles.ranks import analyse, ingest_rank, trace_files

        paths = [p.expanduser().resolve() for p in trace_files(folder_or_paths)]
        want = max(1, min(len(paths), parallel or os.cpu_count() or 1))
        leases = [self.wb.slices.request(slice_spec, wait=True, timeout_s=300)]
        backend = self.wb.jobs.backend
        futures: builtins.list[Any] = []
        try:
            for _ in range(want - 1):
                try:
                    leases.append(self.wb.slices.request(slice_spec, wait=False))
                except Conflict:
                    break  # fewer slices free than traces: the tasks queue on those we have
            for lease in leases:
                backend.ensure_worker(lease)
            workers = [slice_resource(lease.id) for lease in leases]
            batch = uuid.uuid4().hex[:8]
            futures += [backend.client.submit(ingest_rank, str(p), str(self.cache_dir), limits, key=f"profile-rank-{batch}-{i}",
                                             pure=False, workers=workers, allow_other_workers=False, retries=0)
                       for i, p in enumerate(paths)]
            digests = backend.client.gather(futures)
        finally:
            if futures:  # forget the results first, or Dask recomputes them when their worker ends
                backend.client.cancel(futures)
                futures.clear()
            for lease in leases:
                backend.stop_worker(lease.id)
                self.wb.slices.release(lease.id)
        ranks = analyse(digests)
        ranks.fallback_dir = self.cache_dir
        return ranks

    # -- capture -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def capture(self, framework: str = "torch", name: str | None = None, *, job_id: str | None = None,
                out_dir: str | os.PathLike[str] | None = None, **options: Any) -> Iterator[Capture]:
        """`with wb.profile() as p:` profiles the block, then registers the trace; afterwards
        `p.profile` is the stored `Profile` and `p.summary()`, `p.timeline()`... work on it."""
        from workbench.profiles.capture import capture_trace

        target = Path(out_dir) if out_dir is not None else Path(self.wb.settings.traces_dir)
        with capture_trace(framework, target, name=name, **options) as cap:
            yield cap
        if cap.path is None:  # capture_trace sets it when the block ends; a missing one is a bug there
            raise RuntimeError(f"the {framework} capture wrote no trace under {target}")
        cap.profile = self.register(cap.path, name=name or cap.path.name, job_id=job_id, device=cap.device,
                                    framework=framework)

    def close(self) -> None:
        """Nothing to release: profiles hold no connections or processes."""

    # -- helpers -------------------------------------------------------------------------------
    def _from_row(self, row: Any, table: Any = None) -> Profile:
        return Profile(
            id=row.id, name=row.name, path=Path(row.path), owner=row.owner, job_id=row.job_id, device=row.device,
            framework=row.framework, created_at=row.created_at, format=row.format, stored_summary=row.summary,
            cache_dir=self.cache_dir, _table=table,
        )


def _device_from_meta(meta: dict[str, Any]) -> str | None:
    names = meta.get("device_names") or []
    return names[0] if names else None


def _framework_from_meta(meta: dict[str, Any]) -> str | None:
    return {"kineto": "torch", "jax": "jax"}.get(meta.get("format") or "")
