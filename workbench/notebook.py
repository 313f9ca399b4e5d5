"""Helpers for the notebooks that are the documentation.

The out-of-order guard: a reader who runs a notebook cell before the cell that defines what it
uses should be told which cell to run first, not shown a `NameError` from deep inside a call.
A notebook cell that needs names made by an earlier cell starts with

    from workbench.notebook import requires
    requires("wb", "fleet", cell="1. Set up")          # every name made by one cell
    requires(wb="1. Set up", jobs="3. Submit a job")   # or each name with its own cell

`requires` looks the names up in the caller's globals (a notebook cell's globals are the
kernel's user namespace) and raises `CellOrderError` naming the missing names and the cell
to run. In IPython the error prints as that one message, without a traceback.

Why a call in the cell rather than an IPython hook installed by the first cell: the reader who
skipped the first cell never installed the hook. A call that imports its own helper works in any
order, in any kernel, and under nbval.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

__all__ = ["CellOrderError", "data_dir", "requires"]


class CellOrderError(WorkbenchError):
    """A notebook cell ran before the cell that defines what it needs."""

    def __init__(self, missing: Mapping[str, str]) -> None:
        self.missing = dict(missing)
        super().__init__(self._message())

    def _message(self) -> str:
        by_cell: dict[str, list[str]] = {}
        for name, cell in self.missing.items():
            by_cell.setdefault(cell, []).append(name)
        parts = []
        for cell, names in by_cell.items():
            listed = ", ".join(f"`{n}`" for n in names)
            parts.append(f"run the cell “{cell}” first: it defines {listed}")
        return "This cell ran out of order; " + "; and ".join(parts) + "."

    def _render_traceback_(self) -> list[str]:
        """IPython shows these lines instead of a traceback: the message is the whole story."""
        return [f"{type(self).__name__}: {self}"]


def requires(*names: str, cell: str | None = None, namespace: Mapping[str, Any] | None = None, **named: str) -> None:
    """Raise `CellOrderError` unless every name exists in the calling cell's namespace.

    Args:
        *names: names that the cell `cell` defines.
        cell: the heading (or a short description) of the cell that defines `names`.
        namespace: where to look; default the caller's globals (the notebook's namespace).
        **named: `name="cell heading"` pairs, for names defined by different cells.
    """
    if names and cell is None:
        raise TypeError("requires(*names) needs cell='<heading of the cell that defines them>'")
    if cell is not None and not names:
        raise TypeError("requires(cell=...) needs the names that cell defines, e.g. requires('wb', cell=...)")
    wanted = {name: cell for name in names if cell is not None}
    wanted.update(named)
    if not wanted:
        raise TypeError("requires() needs at least one name")
    scope = namespace if namespace is not None else sys._getframe(1).f_globals
    missing = {name: where for name, where in wanted.items() if name not in scope}
    if missing:
        raise CellOrderError(missing)


def data_dir(start: str | Path | None = None) -> Path:
    """The repository's `data/` folder, found from the notebook's folder upwards.

    Notebooks run with their own folder as the working directory (JupyterLab, nbval, Binder),
    so `notebooks/x.ipynb` finds `../data`; a script run from the root finds `./data`.
    """
    here = Path(start) if start is not None else Path.cwd()
    for folder in (here, *here.resolve().parents):
        if (folder / "data" / "fleets").is_dir():
            return folder / "data"
    raise WorkbenchError(
        f"no data/ folder (with data/fleets) in {here} or any folder above it; "
        "the notebooks' data sets ship with the repository: run the notebooks from a clone of it"
    )
