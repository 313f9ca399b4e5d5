"""`SliceService`: the interface of `wb.slices`, whatever implements it.

The in-process implementation (`service.LocalSliceService`, over the database) is the only one
today; the controller over HTTP will be a second. Faces and the other services depend on this
Protocol, never on an implementation's internals, and every verb returns plain records
(`LeaseRecord` and its JSON), so the two are interchangeable.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from workbench.slices.keepalive import KeepAlive
from workbench.slices.lease import LeaseRecord
from workbench.slices.mig import MigPlan
from workbench.slices.offers import DeviceOffers
from workbench.slices.spec import SliceSpec


class SliceService(Protocol):
    """Request, list, get, renew, release leases; sweep the queue; plan MIG layouts."""

    @property
    def lease_ttl_s(self) -> float:
        """How long a lease lives unless renewed (the setting), in seconds."""
        ...

    def request(
        self,
        spec: str | float = "cpu",
        *,
        owner: str | None = None,
        project: str | None = None,
        priority: int = 0,
        ttl_s: float | None = None,
        wait: bool = True,
        timeout_s: float | None = None,
        models: Sequence[str] | str | None = None,
        min_memory_bytes: int | str | None = None,
        node: str | None = None,
        policy: str | None = None,
        cpu_cores: float | None = None,
        memory_bytes: int | str | None = None,
        on_queued: Callable[[LeaseRecord], None] | None = None,
    ) -> LeaseRecord:
        """Lease part of a device: an active lease, or (with `wait`) one granted after queueing."""
        ...

    def check(self, spec: str | float) -> SliceSpec:
        """Parse `spec` and check it against this fleet as `request` does, leasing nothing."""
        ...

    def get(self, lease_id: str) -> LeaseRecord: ...

    def list(self, owner: str | None = None, all_users: bool = False, include_ended: bool = False) -> Sequence[LeaseRecord]:
        ...

    def renew(self, lease_id: str) -> LeaseRecord: ...

    def release(self, lease_id: str) -> LeaseRecord: ...

    def sweep(self) -> dict[str, int]:
        """Expire, check idle leases, grant what fits: counts of each."""
        ...

    def events(self, lease_id: str) -> builtins.list[dict[str, Any]]: ...

    def keep_alive(self) -> KeepAlive: ...

    def plan_mig(self, model: str, profiles: Sequence[str], existing: Iterable[str] = ()) -> MigPlan: ...

    def offers(self) -> builtins.list[DeviceOffers]: ...

    def close(self) -> None: ...
