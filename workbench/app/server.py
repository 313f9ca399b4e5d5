"""Build the dashboard's pages per browser session and run the Panel server."""

from __future__ import annotations

import html
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import panel as pn

from workbench.app.feed import Feed, Unavailable
from workbench.app.layout import PAGES, STATIC_DIR, STATIC_ROUTE, configure, frame, nav_html
from workbench.widgets.render import error_html

if TYPE_CHECKING:
    from workbench.slices.keepalive import KeepAlive

log = logging.getLogger(__name__)

REFRESH_MS = {"fleet": 1000, "jobs": 300, "job": 500, "profiles": 5000, "kernels": 5000, "endpoints": 2000}
_TITLES = dict(PAGES) | {"job": "Job"}


def _arg(name: str, default: str | None = None) -> str | None:
    values = (pn.state.session_args or {}).get(name)
    if not values:
        return default
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _page(feed: Feed, name: str, arg: Callable[[str], str | None] = _arg, keepalive: KeepAlive | None = None) -> Any:
    if name == "fleet":
        from workbench.app.pages.fleet import FleetPage

        return FleetPage(feed, keepalive)
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


KEPT_PAGES = 6


def _query(search: str) -> dict[str, str]:
    """`?page=job&id=J` -> {"page": "job", "id": "J"} (the first value of each name)."""
    return {name: values[0] for name, values in parse_qs(search.lstrip("?")).items() if values}


class Session:
    """One browser tab: the frame, the page shown in it, and the keep-alive of the slices it shows.

    A click on a link to another page changes `pn.state.location.search` (static/navigate.js), and
    the page is swapped inside the open session: no new document, no reloaded scripts, so a page
    switch costs what building the page costs. The tab renews my live slices while it is open
    (`wb.slices.keep_alive()`) and stops when Bokeh destroys its session (the tab closed).
    """

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.keepalive = feed.wb.slices.keep_alive()
        self.heading = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-page-title"])
        self.nav = pn.pane.HTML(nav_html("", feed.wb.user), sizing_mode="stretch_width")
        self.body = pn.Column(sizing_mode="stretch_width", css_classes=["wb-page"])
        self.name = ""
        self._refresh: Any = None
        self._page: Any = None
        self._key: tuple[str, str, str] = ("", "", "")
        self._views: OrderedDict[tuple[str, str, str], tuple[Any, pn.Column]] = OrderedDict()

    def show(self, args: dict[str, str]) -> None:
        """Put the page the query asks for in the frame: a page seen before in this tab is shown
        again (caught up by one refresh), a new one is built; the others are hidden, not rebuilt."""
        if self._refresh is not None:
            self._refresh.stop()
            self._refresh = None
        key = self._key = _key(args)
        name = self.name = key[0]
        page, view, title, active = self._view(key, args)
        self._page = page
        self.heading.object = _heading(getattr(page, "title", None) or title)
        self.nav.object = nav_html(active, self.feed.wb.user)
        for other in self._views.values():
            if other[1] is not view:
                other[1].visible = False
        view.visible = True
        if view not in self.body.objects:
            self.body.append(view)
        refresh = getattr(page, "refresh", None)
        if refresh is not None:
            self._refresh = pn.state.add_periodic_callback(self._tick, period=REFRESH_MS[name])

    def _view(self, key: tuple[str, str, str], args: dict[str, str]) -> tuple[Any, pn.Column, str, str]:
        """(page, its view, title, active nav entry): kept from an earlier visit, or built now.

        Only pages that refresh themselves are kept (a kept page is caught up by `refresh`); at
        most `KEPT_PAGES`, the least recently shown dropped first.
        """
        name = key[0]
        kept = self._views.pop(key, None)
        if kept is not None:
            self._views[key] = kept
            kept[0].refresh()
            return kept[0], kept[1], _TITLES[name], "jobs" if name == "job" else name
        self._drop_unkept()
        if name not in _TITLES:
            error = error_html(f"No page {name!r}", "pages: " + ", ".join(k for k, _ in PAGES))
            return None, pn.Column(pn.pane.HTML(error, sizing_mode="stretch_width"), sizing_mode="stretch_width"), \
                "Not found", ""
        active = "jobs" if name == "job" else name
        try:
            page = _page(self.feed, name, args.get, self.keepalive)
        except Exception as exc:  # a broken page says why instead of a blank screen
            log.exception("page %s failed", name)
            import traceback

            error = error_html(f"The {name} page failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            return None, pn.Column(pn.pane.HTML(error, sizing_mode="stretch_width"), sizing_mode="stretch_width"), \
                _TITLES[name], active
        view = pn.Column(page, sizing_mode="stretch_width")
        if hasattr(page, "refresh"):
            self._views[key] = (page, view)
            while len(self._views) > KEPT_PAGES:
                _, (_, dropped) = self._views.popitem(last=False)
                self.body.remove(dropped)
        return page, view, _TITLES[name], active

    def _drop_unkept(self) -> None:
        """Remove the views of pages that are not kept (errors, pages without `refresh`)."""
        kept = [view for _, view in self._views.values()]
        self.body.objects = [view for view in self.body.objects if any(view is k for k in kept)]

    def _tick(self) -> None:
        page = self._page
        page.refresh()
        title = _heading(getattr(page, "title", None) or _TITLES.get(self.name, ""))
        if title != self.heading.object:
            self.heading.object = title

    def beat(self) -> None:
        """Renew my live slices that are due, while this tab is open (the keep-alive rule)."""
        mine = self.feed.my_leases()
        if isinstance(mine, Unavailable) or self.keepalive.closed:
            return
        if self.keepalive.beat(mine):
            self.feed.invalidate()

    def navigated(self, event: Any) -> None:
        """The browser's query changed (a link clicked; or the page's own query, sent once on load)."""
        args = _query(event.new)
        if _key(args) != self._key:
            self.show(args)

    def close(self, *_: Any) -> None:
        self.keepalive.close()
        if self._refresh is not None:
            self._refresh.stop()


def _key(args: dict[str, str]) -> tuple[str, str, str]:
    """What names a page: (page, id, compare)."""
    return args.get("page") or "fleet", args.get("id") or "", args.get("compare") or ""


def _heading(title: str) -> str:
    return f"<h2 style='margin:4px 0 0 0'>{html.escape(title)}</h2>"


def create_dashboard(wb: Any = None) -> Callable[[], Any]:
    """A function that builds a browser session's frame and the page it asked for (`?page=...`)."""
    configure()
    if wb is None:
        from workbench.api import Workbench

        wb = Workbench()
    feed = Feed(wb)

    def session() -> Any:
        tab = Session(feed)
        tab.show({key: _arg(key) or "" for key in ("page", "id", "compare")})
        template = frame(tab.nav, tab.heading, tab.body)
        pn.state.add_periodic_callback(tab.beat, period=int(tab.keepalive.period_s * 1000))
        pn.state.on_session_destroyed(tab.close)
        if pn.state.location is not None:
            pn.state.location.param.watch(tab.navigated, "search")
        return template

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


class _ClosedTabFilter(logging.Filter):
    """Drop the noise of a browser tab that went away mid-update (a closed tab, a reload).

    Bokeh writes to a session's websocket from tasks nobody awaits; when the tab has gone, tornado
    raises `WebSocketClosedError` there and asyncio logs it as "Task exception was never
    retrieved" with a traceback, and Bokeh warns "Failed sending message". Neither is an error of
    the dashboard: the session is cleaned up as usual. Everything else still reaches the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from tornado.iostream import StreamClosedError
        from tornado.websocket import WebSocketClosedError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (WebSocketClosedError, StreamClosedError)):
            return False
        return not (record.name.startswith("bokeh.server") and "connection was closed" in record.getMessage())


def quiet_closed_tabs() -> None:
    """Install `_ClosedTabFilter` on the loggers that report a closed tab (once)."""
    for name in ("asyncio", "tornado.application", "bokeh.server.views.ws", "bokeh.server.protocol_handler"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ClosedTabFilter) for f in logger.filters):
            logger.addFilter(_ClosedTabFilter())


def serve(port: int = 5006, address: str = "127.0.0.1", prefix: str | None = None, show: bool = False,
          wb: Any = None, start: bool = True) -> Any:
    """Run the dashboard until interrupted (or return the server when `start=False`)."""
    prefix = normalize_prefix(prefix)
    quiet_closed_tabs()
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
