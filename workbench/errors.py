"""The workbench's own exception types.

Every face (CLI, widgets, Panel app, Jupyter handlers) catches `WorkbenchError` and turns it
into a message for a person; anything else is a bug. Each subclass carries an HTTP status so
the REST faces map errors without a lookup table of their own.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: a message that names the thing, the value and what would be valid."""

    http_status: int = 400

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or message

    def __str__(self) -> str:
        return self.message


class ConfigError(WorkbenchError):
    """A setting, a `workbench.toml` or an environment variable is wrong."""


class FleetFileError(WorkbenchError):
    """A declared fleet file (TOML or Alibaba CSV) cannot be read."""


class StoreUnavailable(WorkbenchError):
    """The database cannot be reached or opened."""

    http_status = 503


class DataFolderReadOnly(StoreUnavailable):
    """The data folder (or the database file in it) cannot be written: a read-only mount, or
    permissions. Reading still works; the message names the folder and the permission."""


class NotFound(WorkbenchError):
    """A device, slice, job, profile or kernel with that id does not exist."""

    http_status = 404


class Forbidden(WorkbenchError):
    """The caller does not own the thing it acts on."""

    http_status = 403


class Conflict(WorkbenchError):
    """The request clashes with the current state (already released, no capacity, ...)."""

    http_status = 409


class InvalidRequest(WorkbenchError):
    """A request that can never be met as written (unknown profile, fraction of 0, ...)."""

    http_status = 400


class BackendUnavailable(WorkbenchError):
    """The Dask cluster or another backend service is down."""

    http_status = 503
