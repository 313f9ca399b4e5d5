"""The dashboard's frame: template, navigation, identity and the connection banner.

Links are relative query strings (`?page=jobs`), so the same pages work at `/` and behind any
path prefix (JupyterHub's `/user/<name>/…`, jupyter-server-proxy) without knowing it.
"""

from __future__ import annotations

import html
from pathlib import Path

import panel as pn
from panel.theme import Fast

from workbench.widgets.render import CSS

PAGES = (("fleet", "Fleet & slices"), ("jobs", "Job queue"), ("profiles", "Profiles"), ("kernels", "Kernels"),
         ("endpoints", "Endpoints"))

DASHBOARD_CSS = CSS + """
.wb-nav a{display:block;padding:9px 14px;margin:2px 0;border-radius:6px;color:#1a202c;text-decoration:none;
  font-size:15px}
.wb-nav a:hover{background:#edf2f7}
.wb-nav a.active{background:#e6f0fa;color:#0b5394;font-weight:600}
.wb-who{color:#4a5568;font-size:13px;padding:12px 14px;border-top:1px solid #e2e8f0;margin-top:12px}
.wb-empty{color:#718096;font-style:italic;padding:8px 0}
.wb-kv td,.wb-kv th{padding:3px 12px 3px 0;text-align:left;font-size:13px}
.wb-kv th{color:#4a5568;font-weight:500}
.wb-log{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;background:#1a202c;color:#e2e8f0;
  padding:10px;border-radius:6px;white-space:pre-wrap;max-height:420px;overflow:auto;margin:0}
"""


class OfflineFast(Fast):
    """Panel's Fast design without its Google-hosted font: the dashboard asks nothing of the internet.

    Panel finds a design's bundled files by the class's name, so this one keeps the name `Fast`.
    """

    _resources = {key: value for key, value in Fast._resources.items() if key != "font"}


OfflineFast.__name__ = OfflineFast.__qualname__ = "Fast"


LOCAL_FONTS = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif"
STATIC_ROUTE = "wb-static"
STATIC_DIR = Path(__file__).with_name("static")
_configured = False


def configure() -> None:
    """Panel settings for every session: extensions, reconnect, the disconnect banner."""
    global _configured
    if _configured:
        return
    pn.extension("tabulator", notifications=True, raw_css=[DASHBOARD_CSS])
    # Bokeh's own reconnect cannot resume a session on a restarted server; static/reconnect.js
    # shows a banner and reloads the page once the server answers again.
    pn.config.reconnect = False
    pn.config.disconnect_notification = (
        "Lost the connection to the workbench server (it stopped, or the network dropped). "
        "The page reloads when it is back."
    )
    pn.config.ready_notification = ""
    _configured = True


def nav_html(active: str, user: str) -> str:
    links = "".join(
        f"<a href='?page={key}' class='{'active' if key == active else ''}' data-page='{key}'>{label}</a>"
        for key, label in PAGES
    )
    return (f"<nav class='wb-nav'>{links}</nav><div class='wb-who'>signed in as <b class='wb-user'>"
            f"{html.escape(user)}</b></div>")


def frame(nav: pn.pane.HTML, heading: pn.pane.HTML, body: pn.Column) -> pn.template.FastListTemplate:
    """The template around a session's pages; `nav`, `heading` and `body` change in place on navigation."""
    template = pn.template.FastListTemplate(
        title="Workbench",
        header_background="#0b5394",
        accent_base_color="#0b5394",
        sidebar=[nav],
        sidebar_width=230,
        main=[heading, body],
        theme_toggle=False,
        font_url="",
        font=LOCAL_FONTS,
        design=OfflineFast,
        main_layout=None,
    )
    # relative paths: prefix-safe
    template.config.js_files["wb_reconnect"] = f"{STATIC_ROUTE}/reconnect.js"
    template.config.js_files["wb_navigate"] = f"{STATIC_ROUTE}/navigate.js"
    return template
