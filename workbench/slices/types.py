"""The words of the slices core, defined once: slice kinds, lease states, and the columns of a lease.

Every module of `workbench.slices` (and the faces, through the records) uses these names. The
strings are what the database stores and what the REST API and `--json` print, so they are the
values themselves (`Literal`s), not enums that would need converting at each edge.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Protocol, get_args

SliceKind = Literal["mig", "fraction", "whole", "cpu"]
"""What a slice is: a MIG instance, a share of one GPU, whole GPUs on one node, or CPU cores."""

LeaseState = Literal["queued", "active", "idle", "released", "expired", "preempted", "reclaimed"]
"""Where a lease stands: waiting; holding capacity (active, or idle and reclaimable); or ended."""

SLICE_KINDS: tuple[SliceKind, ...] = get_args(SliceKind)
LIVE_STATES: tuple[LeaseState, ...] = ("active", "idle")
"""Holding capacity now."""
WAITING_STATES: tuple[LeaseState, ...] = ("queued",)
ENDED_STATES: tuple[LeaseState, ...] = ("released", "expired", "preempted", "reclaimed")
OPEN_STATES: tuple[LeaseState, ...] = (*LIVE_STATES, *WAITING_STATES)
"""Not ended yet: what can still be renewed or released, and what expires when not renewed."""
GPU_SHARE_KINDS: tuple[SliceKind, ...] = ("whole", "fraction")
"""Kinds booked as a share (`gpu_milli`) of each of their GPUs; MIG instances are booked apart."""

_STATES: dict[str, LeaseState] = {state: state for state in get_args(LeaseState)}
_KINDS: dict[str, SliceKind] = {kind: kind for kind in SLICE_KINDS}


def lease_state(text: str) -> LeaseState:
    """A state read from the database, typed; a value no version of the workbench writes is an error."""
    try:
        return _STATES[text]
    except KeyError:
        raise ValueError(f"unknown lease state {text!r}; states: {', '.join(_STATES)}") from None


def slice_kind(text: str) -> SliceKind:
    """A kind read from the database or a parsed spec, typed."""
    try:
        return _KINDS[text]
    except KeyError:
        raise ValueError(f"unknown slice kind {text!r}; kinds: {', '.join(SLICE_KINDS)}") from None


class LeaseCore(Protocol):
    """What every shape of a lease row has: who holds what, where (what the book accounts for)."""

    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def node(self) -> str | None: ...
    @property
    def device_keys(self) -> list[Any]: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def mig_start(self) -> int | None: ...
    @property
    def gpu_milli(self) -> int: ...
    @property
    def cpu_milli(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...


class LeaseColumns(LeaseCore, Protocol):
    """The columns of a lease, however they were read: the ORM row (`LeaseRow`), a new lease's
    plain values (`sql.LeaseValues`) or a row returned by a statement on the driver. What a
    `Lease` record is made from."""

    @property
    def priority(self) -> int: ...
    @property
    def request(self) -> dict[str, Any]: ...
    @property
    def env(self) -> dict[str, Any]: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def ttl_s(self) -> float: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def granted_at(self) -> dt.datetime | None: ...
    @property
    def expires_at(self) -> dt.datetime | None: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...
    @property
    def queue_position(self) -> int | None: ...
    @property
    def idle_at(self) -> dt.datetime | None: ...
