"""What every CLI command shares: the Workbench it acts on, JSON output, rich tables.

CLI modules import heavy libraries (pandas, dask, torch, jax) inside their commands, never at the
top, so `workbench --help` and `workbench devices` start in a fraction of a second.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Everything the CLI prints may hold user text (a spec, a path, a line of a file, a job's error):
# no rich markup (`[/]` would raise, `[red]x[/red]` would vanish), no `:x:` emoji codes and no
# highlighting, so it is printed as written. Styles come from `Text` objects, never from markup.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)


def get_workbench(**overrides: Any) -> Any:
    from workbench.api import Workbench

    return Workbench(**{k: v for k, v in overrides.items() if v is not None})


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "as_json"):
        return value.as_json()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    sys.stdout.buffer.write(
        orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[Any]], *, limit: int | None = 200) -> None:
    """People output: a rich table, cut at `limit` rows with a note of how many were left out.

    Columns with no value in any row (all None or NaN) are left out when there are rows; floats
    are shown to four significant digits (`31.5`, not `31.499999999999996`).
    """
    t = Table(title=title, header_style="bold")
    shown = rows if limit is None else rows[:limit]
    keep = [i for i in range(len(columns)) if not shown or any(not _empty(row[i]) for row in shown)]
    for i in keep:
        c = columns[i]
        if c == "id" or c.endswith(("_id", " id")):
            # ids are what the next command needs (`jobs logs ID`): never cut, other columns give way
            widest = max((len(str(row[i])) for row in shown if row[i] is not None), default=0)
            t.add_column(c, no_wrap=True, min_width=max(widest, len(c)))
        else:
            t.add_column(c, overflow="fold")
    for row in shown:
        t.add_row(*(_cell(row[i]) for i in keep))
    console.print(t)
    if limit is not None and len(rows) > limit:
        console.print(f"… {len(rows) - limit:,} more rows (use --json for all)")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    if _empty(value):
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 node`, `2 nodes`, `1,024 GPUs`."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def labelled(label: str, style: str, message: str) -> Text:
    """`label: message` with only the label styled; the message is printed literally."""
    return Text.assemble((f"{label}:", style), " ", message)


def print_error(message: str) -> None:
    """One line on stderr: `error: message`, the message literal and unwrapped."""
    err_console.print(labelled("error", "bold red", message), soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    print_error(message)
    raise typer.Exit(code)
