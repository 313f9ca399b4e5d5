"""`workbench version` and `workbench lab` (what `make lab` ends with)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.cli._common import console, fail


TOUR = Path("notebooks") / "00_tour.ipynb"


def _project_dir() -> Path:
    """The folder JupyterLab is rooted at: the current one (the project, where `make lab` runs).

    Rooted there, the sidebar can submit the README's own examples (`examples/...`), which a root
    at `notebooks/` would put outside Jupyter's reach.
    """
    return Path.cwd()


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the workbench's version."""
        from workbench import __version__

        console.print(__version__, highlight=False)

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def lab(
        ctx: typer.Context,
        notebook_dir: Annotated[Optional[Path], typer.Option("--notebook-dir", help="Folder JupyterLab is rooted at; default: the current folder (the project).")] = None,
        port: Annotated[int, typer.Option(help="Port (make lab PORT=8899); the next free one is used if taken.")] = 8888,
        no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    ) -> None:
        """Start JupyterLab with the workbench on its embedded defaults (SQLite, LocalCluster, CPU)."""
        folder = notebook_dir or _project_dir()
        if not folder.is_dir():
            fail(f"--notebook-dir {folder} is not a folder")
        if not 1 <= port <= 65535:
            fail(f"--port {port} is not a TCP port; give one from 1 to 65535, e.g. --port 8899")
        if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None and shutil.which("jupyter") is None:
            fail("JupyterLab is not installed; install it with: pip install 'gpu-workbench[lab]'")
        args = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", f"--ServerApp.port={port}"]
        if (folder / TOUR).is_file():  # open the tour first: JupyterLab's URL of a file under its root
            args.append(f"--LabApp.default_url=/lab/tree/{TOUR.as_posix()}")
        if no_browser or not (os.environ.get("DISPLAY") or sys.platform == "darwin"):
            args.append("--no-browser")
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in ctx.args:
            args.append("--allow-root")  # containers and CI run as root; JupyterLab refuses without it
        args.extend(ctx.args)
        console.print(f"Starting JupyterLab on {folder} on port {port}: open the URL with ?token=… that it prints "
                      "below (another port: workbench lab --port 8899, or make lab PORT=8899) …", markup=False, highlight=False)
        sys.stdout.flush()
        os.execv(sys.executable, args)
