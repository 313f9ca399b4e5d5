"""What the dashboard's pages read, shared by every browser tab of one server.

Each page refreshes on a periodic callback; with many tabs open, each would query the store on
every tick. `Feed` keeps the last answer of each facade call for `ttl_s`, so a server with ten
tabs asks the store once per tick. It holds no business logic: it calls `Workbench` and remembers.
A noun whose service is not installed (or not written yet) reads as `Unavailable` with the reason,
so a page can say so instead of breaking.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unavailable:
    """A noun that cannot be read: the service is missing, or the call failed."""

    noun: str
    reason: str

    def __bool__(self) -> bool:
        return False


class Feed:
    """Cached reads of one `Workbench`, shared by the sessions of one dashboard server."""

    def __init__(self, wb: Any, ttl_s: float = 0.2) -> None:
        self.wb = wb
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, noun: str, read: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        try:
            value = read()
        except ModuleNotFoundError as exc:
            value = Unavailable(noun, f"the {noun} service is not installed ({exc.name})")
        except Exception as exc:  # a face shows the failure; the next tick tries again
            value = Unavailable(noun, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def invalidate(self) -> None:
        """Forget cached answers, after this server changed something (a request, a cancel)."""
        with self._lock:
            self._cache.clear()

    def service(self, noun: str) -> Any:
        """The noun's service, or `Unavailable` when it cannot be loaded."""
        try:
            return getattr(self.wb, noun)
        except ModuleNotFoundError as exc:
            return Unavailable(noun, f"the {noun} service is not installed ({exc.name})")

    def devices(self) -> Any:
        return self._cached("devices", "devices", self.wb.devices)

    def offers(self) -> Any:
        """What can be requested on each kind of device (`wb.slices.offers()`)."""
        return self._cached("offers", "slices", self.wb.slices.offers)

    def leases(self) -> Any:
        """Every lease that holds or waits for capacity, all owners (the fleet is shared)."""
        return self._cached("leases", "slices", lambda: list(self.wb.slices.list(all_users=True)))

    def my_leases(self) -> Any:
        return self._cached("my_leases", "slices", lambda: list(self.wb.slices.list()))

    def jobs(self) -> Any:
        return self._cached("jobs", "jobs", lambda: list(self.wb.jobs.list(all_users=True)))

    def profiles(self) -> Any:
        return self._cached("profiles", "profiles", lambda: list(self.wb.profiles.list()))

    def kernels(self) -> Any:
        return self._cached("kernels", "kernels", lambda: list(self.wb.kernels.list()))

    def endpoints(self) -> Any:
        return self._cached("endpoints", "endpoints", lambda: list(self.wb.endpoints.list(all_users=True, include_stopped=True)))

    def endpoint_stats(self, endpoint_id: str) -> dict[str, float]:
        stats = self._cached(f"endpoint-stats-{endpoint_id}", "endpoints", lambda: self.wb.endpoints.stats(endpoint_id))
        return {} if isinstance(stats, Unavailable) else stats
