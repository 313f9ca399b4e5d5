"""Helpers shared by the Jupyter face's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def table_rows(home: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of a store table, to check that a refused request changed nothing."""
    import sqlite3

    db = home / "workbench.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
