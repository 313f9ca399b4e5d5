"""The jupyter-server-proxy launcher entry: JupyterLab's launcher opens the dashboard.

jupyter-server-proxy starts `workbench serve` on a free port and forwards
`<base_url>workbench/` to it; `absolute_url=True` keeps that prefix in the forwarded path, so the
dashboard serves under it (its links are relative). The user is JupyterHub's (`JUPYTERHUB_USER`)
when the server runs under JupyterHub.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ICON = Path(__file__).with_name("icon.svg")


def setup_workbench() -> dict[str, Any]:
    """Entry point `jupyter_serverproxy_servers: workbench`."""
    return {
        "command": [sys.executable, "-m", "workbench", "serve", "--port", "{port}", "--prefix", "{base_url}workbench/",
                    "--no-show"],
        "absolute_url": True,
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": {"enabled": False, "title": "Workbench", "icon_path": str(ICON), "category": "Other"},
    }
