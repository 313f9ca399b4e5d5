"""Wire the REST handlers into a Jupyter server: one `Workbench` per server process."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.utils import url_path_join

API_PREFIX = "workbench/api"


class WorkbenchHolder:
    """The server's one `Workbench`, created on first use.

    Settings come from `workbench.toml` and `WORKBENCH_*` as everywhere else. A broken setting
    does not stop Jupyter from starting: every API call answers 503 with the configuration error,
    which is what a person looking at the sidebar needs to see. Calls into the core block (the
    database, Dask), so they run on a small thread pool, never on the server's event loop.
    """

    def __init__(self, factory: Any = None) -> None:
        self._factory = factory
        self.log: Any = logging.getLogger("workbench.jupyter")
        self._wb: Any = None
        self._views: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="workbench-api")
        self.sweeper: Any = None  # the periodic lease sweep (`_start_sweeps`)

    def get(self) -> Any:
        with self._lock:
            return self._get()

    def _get(self) -> Any:
        if self._wb is None:
            if self._factory is not None:
                self._wb = self._factory()
            else:
                from workbench.api import Workbench
                from workbench.errors import BackendUnavailable, ConfigError

                try:
                    self._wb = Workbench()
                except ConfigError as exc:
                    raise BackendUnavailable(f"the workbench's settings are wrong: {exc}") from None
        return self._wb

    def for_user(self, user: str) -> Any:
        """The `Workbench` acting for `user`.

        The server's own user gets the server's Workbench. Anyone else the identity provider lets
        in (a JupyterHub admin with access to this server, or an identity provider that knows
        several users) gets a view: the same settings with `user` replaced, sharing the server's
        database and inventory, so the core's own ownership rules apply to them. A view starts its
        own Dask client only if that user submits a job.
        """
        wb = self.get()
        if user == wb.user:
            return wb
        with self._lock:
            view = self._views.get(user)
            if view is None:
                view = wb.for_user(user)
                self._views[user] = view
            return view

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        with self._lock:
            views, self._views = list(self._views.values()), {}
        for view in views:
            view.close()
        wb, self._wb = self._wb, None
        if wb is not None:
            if os.environ.get("JUPYTERHUB_USER"):
                release_on_shutdown(wb, self.log)
            wb.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def release_on_shutdown(wb: Any, log: Any) -> None:
    """A JupyterHub single-user server that stops (the idle culler, the user, the admin) gives
    its user's slices back at once instead of holding them until their leases expire: the
    kernels that used them stop with the server."""
    try:
        for lease in wb.slices.list(owner=wb.user):
            wb.slices.release(lease.id)
            log.info("workbench: released %s (%s) as the server stops", lease.id, wb.user)
    except Exception as exc:  # the database may already be gone; leases then expire on their own
        log.warning("workbench: could not release %s's slices at shutdown: %s", wb.user, exc)


def load(serverapp: Any) -> None:
    from workbench.jupyter.handlers import route_table

    holder = serverapp.web_app.settings.get("workbench_holder")
    if holder is None:
        holder = WorkbenchHolder(serverapp.web_app.settings.get("workbench_factory"))
        holder.log = serverapp.log
        serverapp.web_app.settings["workbench_holder"] = holder
        atexit.register(holder.close)
    serverapp.web_app.settings["workbench_root_dir"] = serverapp.root_dir
    base_url = serverapp.web_app.settings["base_url"]
    handlers = [(url_path_join(base_url, API_PREFIX, pattern), handler) for pattern, handler in route_table()]
    serverapp.web_app.add_handlers(".*$", handlers)
    _route_first(serverapp.web_app, handlers[0][1])
    serverapp.log.info("workbench: REST API at %s", url_path_join(base_url, API_PREFIX) + "/")
    _start_sweeps(holder)


def _start_sweeps(holder: WorkbenchHolder) -> None:
    """Expire leases, mark idle ones and grant waiting requests every `sweep_interval_s`, so a
    dead notebook's slice comes back even when nobody asks for one (on the API's thread pool)."""
    from tornado.ioloop import PeriodicCallback

    from workbench.config import load_settings
    from workbench.errors import WorkbenchError

    try:
        interval_s = load_settings().sweep_interval_s
    except WorkbenchError:
        return  # the API answers 503 with the configuration error
    if interval_s <= 0:
        return

    def sweep() -> None:
        try:
            counts = holder.get().slices.sweep()
        except Exception as exc:  # noqa: BLE001 - a database that is down now may be back at the next sweep
            holder.log.warning("workbench: lease sweep failed: %s", exc)
            return
        if any(counts.values()):
            holder.log.info("workbench: lease sweep %s", counts)

    holder.sweeper = PeriodicCallback(lambda: holder.executor.submit(sweep), interval_s * 1000)
    holder.sweeper.start()


def _route_first(web_app: Any, marker: type) -> None:
    """Move our rules ahead of other extensions' so `workbench/api/` wins over a proxy entry.

    jupyter-server-proxy serves the Panel dashboard at `{base_url}workbench/` and, loading before
    us, would otherwise swallow `{base_url}workbench/api/...` with its catch-all route.
    """
    rules = web_app.default_router.rules
    for i, rule in enumerate(rules):
        inner = getattr(rule.target, "rules", ())
        if any(getattr(r, "target", None) is marker for r in inner):
            rules.insert(0, rules.pop(i))
            return
