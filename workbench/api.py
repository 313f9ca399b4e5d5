"""The facade: `Workbench`, the one object every face (notebook, widgets, Panel, Jupyter, CLI) calls.

It owns the settings, the database and the noun services (`devices()`, `slices`, `jobs`,
`profiles`, `kernels`, `energy`, `endpoints`). Services are created on first use, so a `Workbench` that only
lists devices never opens the database or starts Dask.
"""

from __future__ import annotations

import html
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings, load_settings
from workbench.inventory import Inventory, discover, load_fleet

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from workbench.endpoints.service import EndpointService
    from workbench.energy.service import EnergyService
    from workbench.jobs.service import JobService
    from workbench.kernels.protocol import KernelService
    from workbench.profiles.capture import Capture
    from workbench.profiles.protocol import ProfileService
    from workbench.slices.interface import SliceService
    from workbench.store import Store


class Workbench:
    """A researcher's handle on the team's accelerators.

    `Workbench()` uses the embedded defaults (an SQLite file under the data directory, an embedded
    Dask `LocalCluster`, this machine's devices); keyword arguments override any setting, e.g.
    `Workbench(home="/tmp/wb", fleet="data/fleets/h100_2x8.toml")`.
    """

    def __init__(self, settings: Settings | None = None, /, **overrides: Any) -> None:
        if settings is not None and overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings if settings is not None else load_settings(**overrides)
        self._inventory: Inventory | None = None
        self._parent: Workbench | None = None  # set on a view from `for_user`: it owns the store

    # -- devices ------------------------------------------------------------------------------
    def devices(self, fleet: str | Path | None = None, *, refresh: bool = False) -> Inventory:
        """The inventory: a declared fleet when one is given or configured, else this machine."""
        if fleet is not None:
            return load_fleet(fleet)
        if self._inventory is None or refresh:
            self._inventory = load_fleet(self.settings.fleet) if self.settings.fleet else discover()
        return self._inventory

    # -- state --------------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        if self._parent is not None:
            return self._parent.store
        from workbench.store import Store

        return Store(self.settings.database, write_retry_s=self.settings.database_retry_s,
                     busy_timeout_s=self.settings.database_busy_timeout_s)

    @property
    def user(self) -> str:
        return self.settings.user

    @property
    def home(self) -> Path:
        return self.settings.home

    def is_admin(self, user: str | None = None) -> bool:
        return (user or self.user) in self.settings.admin_users

    def for_user(self, user: str) -> Workbench:
        """A `Workbench` acting for `user` (a server serving several people): the same settings
        with `user` replaced, sharing this one's database engine and inventory, so the core's own
        ownership rules apply. This object stays the owner of the shared store: closing the view
        stops only what the view started (its own Dask client, if that user submitted a job)."""
        if user == self.user:
            return self
        view = Workbench(self.settings.model_copy(update={"user": user}))
        view._parent = self
        view._inventory = self.devices()
        return view

    # -- noun services (each module owns its noun) ---------------------------------------------
    @cached_property
    def slices(self) -> SliceService:
        from workbench.slices.service import LocalSliceService

        return LocalSliceService(
            settings=self.settings, store=lambda: self.store, devices=self.devices, endpoints=lambda: self.endpoints
        )

    @cached_property
    def jobs(self) -> JobService:
        from workbench.jobs.service import JobService

        return JobService(self)

    @cached_property
    def profiles(self) -> ProfileService:
        from workbench.profiles.service import ProfileService as Profiles

        return Profiles(self)

    @cached_property
    def kernels(self) -> KernelService:
        from workbench.kernels.service import KernelService as Kernels

        return Kernels(self)

    @cached_property
    def energy(self) -> EnergyService:
        from workbench.energy.service import EnergyService

        return EnergyService(self)

    @cached_property
    def endpoints(self) -> EndpointService:
        from workbench.endpoints.service import EndpointService

        return EndpointService(self)

    def profile(self, *args: Any, **kwargs: Any) -> AbstractContextManager[Capture]:
        """`with wb.profile() as p:` captures a torch or jax profile of the code inside."""
        return self.profiles.capture(*args, **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop what this object started (its Dask cluster, database connections)."""
        for name in ("endpoints", "jobs", "slices", "profiles", "kernels", "energy"):
            service = self.__dict__.get(name)
            if service is not None and hasattr(service, "close"):
                service.close()
        store = self.__dict__.get("store")
        if store is not None and self._parent is None:
            store.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Workbench user={self.user!r} home={str(self.home)!r} database={self._database_label()!r}>"

    def _database_label(self) -> str:
        from workbench.store.engine import mask_url

        return mask_url(self.settings.database)

    def _repr_html_(self) -> str:
        rows = {
            "user": self.user,
            "data directory": str(self.home),
            "database": self._database_label(),
            "Dask": self.settings.dask_scheduler or "embedded LocalCluster (started on first job)",
            "devices": repr(self.devices()),
        }
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows.items())
        return f"<div class='workbench'><b>Workbench</b><table>{body}</table></div>"
