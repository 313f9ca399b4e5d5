"""Build the dashboard's pages per browser session and run the Panel server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.app.feed import Feed
from workbench.app.layout import PAGES, STATIC_DIR, STATIC_ROUTE, configure, frame
from workbench.widgets.render import error_html

log = logging.getLogger(__name__)

REFRESH_MS = {"fleet": 1000, "jobs": 300, "job": 500, "profiles": 5000, "kernels": 5000, "endpoints": 2000}
_TITLES = dict(PAGES) | {"job": "Job"}


def _arg(name: str, default: str | None = None) -> str | None:
    values = (pn.state.session_args or {}).get(name)
    if not values:
        return default
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _page(feed: Feed, name: str, arg: Callable[[str], str | None] = _arg) -> Any:
    if name == "fleet":
        from workbench.app.pages.fleet import FleetPage

        return FleetPage(feed)
    if name == "jobs":
        from workbench.app.pages.jobs import JobsPage

        return JobsPage(feed)
    if name == "job":
        from workbench.app.pages.job import JobPage

        return JobPage(feed, arg("id") or "")
    if name == "profiles":
        from workbench.app.pages.profiles import ProfilesPage

        return ProfilesPage(feed, arg("id"), arg("compare"))
    if name == "kernels":
        from workbench.app.pages.kernels import KernelsPage

        return KernelsPage(feed)
    if name == "endpoints":
        from workbench.app.pages.endpoints import EndpointsPage

        return EndpointsPage(feed)
    raise KeyError(name)


def create_dashboard(wb: Any = None) -> Callable[[], Any]:
    """A function that builds the page a browser session asked for (`?page=...`)."""
    configure()
    if wb is None:
        from workbench.api import Workbench

        wb = Workbench()
    feed = Feed(wb)

    def session() -> Any:
        name = _arg("page", "fleet") or "fleet"
        if name not in _TITLES:
            body: list[Any] = [pn.pane.HTML(error_html(
                f"No page {name!r}", "pages: " + ", ".join(k for k, _ in PAGES)), sizing_mode="stretch_width")]
            return frame("Not found", "", wb.user, body)
        try:
            page = _page(feed, name)
        except Exception as exc:  # a broken page says why instead of a blank screen
            log.exception("page %s failed", name)
            import traceback

            body = [pn.pane.HTML(error_html(f"The {name} page failed", f"{type(exc).__name__}: {exc}",
                                            traceback.format_exc()), sizing_mode="stretch_width")]
            return frame(_TITLES[name], name, wb.user, body)
        refresh = getattr(page, "refresh", None)
        if refresh is not None:
            pn.state.add_periodic_callback(refresh, period=REFRESH_MS[name])
        title = getattr(page, "title", None) or _TITLES[name]
        return frame(title, "jobs" if name == "job" else name, wb.user, [page])

    return session


def page(name: str = "fleet", wb: Any = None, *, refresh: bool = True, **args: str) -> Any:
    """One dashboard page as a Panel object, for a notebook cell (`page("jobs", wb)`) or `.servable()`.

    `args` are what the URL would carry, e.g. `page("job", wb, id=job.id)`. With `refresh` the page
    updates on a periodic callback while the notebook's kernel runs it.
    """
    configure()
    if wb is None:
        from workbench.api import Workbench

        wb = Workbench()
    view = _page(Feed(wb), name, lambda key: args.get(key))
    if refresh and hasattr(view, "refresh"):
        pn.state.add_periodic_callback(view.refresh, period=REFRESH_MS[name])
    return pn.panel(view)


def normalize_prefix(prefix: str | None) -> str:
    """`user/a%40b/workbench/` -> `/user/a%40b/workbench` (Bokeh routes match the raw, quoted path)."""
    if not prefix or prefix.strip("/") == "":
        return ""
    return "/" + prefix.strip("/")


def serve(port: int = 5006, address: str = "127.0.0.1", prefix: str | None = None, show: bool = False,
          wb: Any = None, start: bool = True) -> Any:
    """Run the dashboard until interrupted (or return the server when `start=False`)."""
    prefix = normalize_prefix(prefix)
    hosts = {address, "localhost", "127.0.0.1"} - {"0.0.0.0", "::"}
    # Behind a proxy (JupyterHub, jupyter-server-proxy) the page's origin is the proxy's, unknown here.
    origin: list[str] = ["*"] if prefix or address in ("0.0.0.0", "::") else [f"{h}:{port}" for h in sorted(hosts)]
    server = pn.serve(
        create_dashboard(wb), port=port, address=address, prefix=prefix, show=show, start=False,
        websocket_origin=origin, title="Workbench", threaded=False, static_dirs={STATIC_ROUTE: str(STATIC_DIR)},
    )
    if start:
        server.start()
        url = f"http://{'localhost' if address in ('0.0.0.0', '::', '127.0.0.1') else address}:{server.port}{prefix}/"
        print(f"Workbench dashboard at {url}", flush=True)
        server.io_loop.start()
    return server
