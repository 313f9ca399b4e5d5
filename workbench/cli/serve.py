"""`workbench serve`: the Panel dashboard (fleet and slices, jobs, profiles, kernels)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 5006,
        prefix: Annotated[Optional[str], typer.Option(help="URL path prefix when behind a proxy, e.g. /user/NAME/workbench/.")] = None,
        address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        show: Annotated[bool, typer.Option("--show/--no-show", help="Open the dashboard in a browser.")] = False,
    ) -> None:
        """Serve the dashboard; it acts as the JupyterHub user when behind JupyterHub, else the local user."""
        from workbench.app import serve as run
        from workbench.cli._common import get_workbench

        run(port=port, address=address, prefix=prefix, show=show, wb=get_workbench())
