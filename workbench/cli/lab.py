"""`workbench version` and `workbench lab` (what `make lab` ends with)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.cli._common import console, fail


def _notebooks_dir() -> Path:
    here = Path.cwd() / "notebooks"
    return here if here.is_dir() else Path.cwd()


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the workbench's version."""
        from workbench import __version__

        console.print(__version__, highlight=False)

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def lab(
        ctx: typer.Context,
        notebook_dir: Annotated[Optional[Path], typer.Option("--notebook-dir", help="Folder JupyterLab opens; default ./notebooks.")] = None,
        port: Annotated[int, typer.Option(help="Port; the next free one is used if taken.")] = 8888,
        no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    ) -> None:
        """Start JupyterLab with the workbench on its embedded defaults (SQLite, LocalCluster, CPU)."""
        folder = notebook_dir or _notebooks_dir()
        if not folder.is_dir():
            fail(f"--notebook-dir {folder} is not a folder")
        if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None and shutil.which("jupyter") is None:
            fail("JupyterLab is not installed; install it with: pip install 'gpu-workbench[lab]'")
        args = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", f"--ServerApp.port={port}"]
        if no_browser or not (os.environ.get("DISPLAY") or sys.platform == "darwin"):
            args.append("--no-browser")
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in ctx.args:
            args.append("--allow-root")  # containers and CI run as root; JupyterLab refuses without it
        args.extend(ctx.args)
        console.print(f"Starting JupyterLab on {folder} (the URL with its token follows) …")
        sys.stdout.flush()
        os.execv(sys.executable, args)
