"""What the records the services hand out (a `Lease`, a `Job`) share.

A record is a snapshot of a database row with a link back to the service that read it, so
`lease.refresh()` or `job.refresh()` re-reads the row and updates the object in place.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import fields
from typing import Any, Self


class ServiceRecord:
    """Mixin for dataclass records with an `id` and a `_service` field (the service's `get`)."""

    id: str
    _service: Any

    def _svc(self) -> Any:
        if self._service is None:
            raise RuntimeError(
                f"this {type(self).__name__} is detached from its service; read it again with the service's get({self.id!r})"
            )
        return self._service

    def _update(self, other: Self) -> Self:
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, getattr(other, f.name))
        return self

    def refresh(self) -> Self:
        """Re-read this record from the database."""
        return self._update(self._svc().get(self.id))

    def as_json(self) -> dict[str, Any]:
        """The public fields, times as ISO 8601 strings (what `--json` and the REST API print)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}  # type: ignore[arg-type]
        for key, value in data.items():
            if isinstance(value, dt.datetime):
                data[key] = value.isoformat()
        return data


def html_card(
    css_class: str, title: str, state: str, color: str, rows: list[tuple[str, str]], footer: str = "", subtitle: str = ""
) -> str:
    """A record in a notebook: its title in bold (then `subtitle`), a coloured state badge and a
    table of `(label, value)`.

    `footer` is HTML placed after the table (already escaped by the caller).
    """
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return (
        f"<div class='{css_class}'><b>{html.escape(title)}</b> {html.escape(subtitle) + ' ' if subtitle else ''}"
        f"<span style='color:white;background:{color};padding:0 .4em;border-radius:3px'>{html.escape(state)}</span>"
        f"<table>{body}</table>{footer}</div>"
    )


def html_table(css_class: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]], empty: str) -> str:
    """A list of records in a notebook; `empty` is shown (in italics) when there are none."""
    if not rows:
        return f"<div class='{css_class}'><i>{html.escape(empty)}</i></div>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>" for cells in rows)
    return f"<div class='{css_class}'><table><tr>{head}</tr>{body}</table></div>"
