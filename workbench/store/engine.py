"""The database: one SQLAlchemy engine, schema by alembic migration, safe concurrent allocation.

SQLite (the default) runs in WAL mode so readers never block the writer, with a busy timeout so
concurrent writers wait instead of failing. `Store.locked()` (and `Store.immediate()`, its ORM
unit of work) opens a transaction that takes the write lock at its start (`BEGIN IMMEDIATE` on
SQLite, a transaction-scoped advisory lock on PostgreSQL): an allocation reads free capacity and
writes its lease with no other allocation in between, so two processes never hand out the same
capacity. `DriverStatement` runs the allocation's few hot statements on the driver itself.

`Store.write()` retries a write that failed for a reason that passes (SQLite busy beyond its
timeout, a full disk, PostgreSQL restarting or unreachable) with backoff, for a bounded time,
so a job's final state survives a database that is briefly away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import tenacity

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from workbench.errors import DataFolderReadOnly, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)
DEFAULT_WRITE_RETRY_S = 60.0
DEFAULT_BUSY_TIMEOUT_S = 30.0
# SQLite's errors that pass (another writer, a full disk someone frees); PostgreSQL's
# OperationalError is about the connection or the server (restarting, unreachable, disk full).
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "database table is locked", "disk i/o error",
                     "database or disk is full", "unable to open database file")

# What SQLite says when the database file, its folder (for the -wal, -shm and lock files) or
# the mount is not writable.
_SQLITE_READ_ONLY = ("readonly database", "read-only file system", "permission denied")

_MIGRATIONS = Path(__file__).parent / "migrations"
# One advisory-lock key for allocations on PostgreSQL ("wballoc" in ASCII, fits in a bigint).
_PG_ALLOCATION_LOCK = 0x7762616C6C6F63
_PG_MIGRATION_LOCK = 0x77626D696772


def mask_url(url: str) -> str:
    """The URL with its password replaced, safe to show in messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event emit BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not _is_read_only_connection(dbapi_conn):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # Straight to the driver: this runs for every allocation, inside the allocation lock.
        conn.connection.driver_connection.execute(f"BEGIN {mode}")


def _is_read_only_connection(dbapi_conn: Any) -> bool:
    return bool(dbapi_conn.execute("PRAGMA query_only").fetchone()[0])


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a WAL database in a folder this process cannot write.

    SQLite opens such a file read-only only while its -shm and -wal files exist (they go when the
    last writer closes); otherwise only as `immutable`, i.e. without locks, which is safe when
    no one writes the folder (a read-only mount, a snapshot) and may read a half-written page if
    someone with more rights writes it meanwhile. Writes fail with "readonly database", which
    `Store._read_only` turns into a message that names the folder.
    """
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opening is lazy
    except sqlite3.OperationalError:
        connection.close()
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    connection.execute("PRAGMA query_only=1")  # what `_sqlite_pragmas` reads to leave the journal mode be
    return connection


class Store:
    """The workbench's database. Create one per process (the `Workbench` object holds it)."""

    def __init__(self, url: str, *, migrate: bool = True, write_retry_s: float = DEFAULT_WRITE_RETRY_S,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.url = url
        self.write_retry_s = write_retry_s
        self.busy_timeout_ms = int(busy_timeout_s * 1000)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                try:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailable(f"cannot create the database folder for {url}: {exc.strerror}") from None
        try:
            kwargs: dict[str, Any] = {"future": True, "json_serializer": _json_text, "json_deserializer": _json_value}
            read_only_file = self._read_only_file()
            if read_only_file is not None:
                kwargs["creator"] = lambda: _connect_read_only(read_only_file)
            if not self.is_sqlite:
                kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 5})
            self.engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise StoreUnavailable(f"database URL {mask_url(url)!r} is not valid: {exc}") from None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine, self.busy_timeout_ms)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._immediate_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"<Store {mask_url(self.url)}>"

    def _read_only_file(self) -> Path | None:
        """The database file when it exists in a folder this process cannot write, else None."""
        folder = self.data_folder
        if folder is None:
            return None
        path = Path(self.url.split("///", 1)[-1]).resolve()
        return path if path.is_file() and not os.access(folder, os.W_OK) else None

    # -- schema -------------------------------------------------------------------------------
    def _alembic_config(self, connection: Any) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = connection
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe when many processes start at once."""
        from alembic import command

        if self._schema_is_current():
            return
        try:
            with self._migration_lock(), self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                command.upgrade(self._alembic_config(conn), "heads")
        except OperationalError as exc:
            if self._is_read_only(exc):
                raise self.read_only_error("cannot create or update the database", _first_line(exc)) from None
            raise StoreUnavailable(f"cannot reach the database at {mask_url(self.url)}: {_first_line(exc)}") from None
        except DBAPIError as exc:
            raise StoreUnavailable(f"database error at {mask_url(self.url)}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if not self.is_sqlite or ":memory:" in self.url:
            yield
            return
        lock_path = Path(self.url.split("///", 1)[-1] + ".migrate.lock")
        try:
            handle = lock_path.open("a")
        except OSError as exc:
            raise self.read_only_error("cannot update the database schema", exc.strerror or str(exc)) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _schema_is_current(self) -> bool:
        """Whether the database is at the migrations' heads already, read without any lock, so
        that a read-only data folder (or a reader among many) needs no migration lock."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        if ":memory:" in self.url:
            return False
        try:
            with self.engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        except (OperationalError, DBAPIError):
            return False  # no database yet, or unreachable: `migrate` says which
        return current == set(ScriptDirectory.from_config(self._alembic_config(None)).get_heads())

    @property
    def data_folder(self) -> Path | None:
        """The folder of a SQLite database file (None for PostgreSQL or memory)."""
        if not self.is_sqlite or ":memory:" in self.url:
            return None
        return Path(self.url.split("///", 1)[-1]).resolve().parent

    def read_only_error(self, what: str, why: str) -> DataFolderReadOnly:
        """The error for a write that failed because the data folder is not writable."""
        return DataFolderReadOnly(f"{what}: the data folder {self.data_folder} is not writable "
                                  f"({why}; reading works, writing needs write permission on the folder)")

    def _is_read_only(self, exc: BaseException) -> bool:
        if not self.is_sqlite:
            return False
        message = str(getattr(exc, "orig", None) or exc).lower()
        if any(words in message for words in _SQLITE_READ_ONLY):
            return True
        # SQLite says only "unable to open database file" when it cannot create its files.
        folder = self.data_folder
        return "unable to open database file" in message and folder is not None and not os.access(folder, os.W_OK)

    def revision(self) -> tuple[str, ...]:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return tuple(MigrationContext.configure(conn).get_current_heads())

    # -- sessions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._wrap_errors(), self._sessions() as s, s.begin():
            yield s

    def allocation_connection(self) -> Connection:
        """A connection for `locked(connection)` that a caller keeps across transactions (one
        thread at a time). The slices service holds one for its life: the pool checkout, reset
        and session set-up a fresh unit of work pays cost a third of an allocation's time inside
        the lock, and SQLite keeps its page cache on a connection that stays open."""
        with self._wrap_errors():
            return self.engine.execution_options(sqlite_begin="IMMEDIATE").connect()

    @contextlib.contextmanager
    def immediate(self) -> Iterator[Session]:
        """A unit of work that holds the allocation lock from its first statement."""
        with self._wrap_errors(), self._immediate_sessions() as s, s.begin():
            self._lock_allocations(s.connection())
            yield s

    @contextlib.contextmanager
    def locked(self, connection: Connection) -> Iterator[Connection]:
        """A transaction on `connection` (from `allocation_connection()`) that holds the
        allocation lock from its start; commits when the block ends, rolls back on an error."""
        with self._wrap_errors(), connection.begin():
            self._lock_allocations(connection)
            yield connection

    def _lock_allocations(self, connection: Connection) -> None:
        # On SQLite the transaction's BEGIN IMMEDIATE took the write lock already.
        if not self.is_sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ALLOCATION_LOCK})

    def is_transient(self, exc: BaseException) -> bool:
        """Whether `exc` is a database error that may pass if the write is tried again."""
        driver_error = self.engine.dialect.loaded_dbapi.OperationalError
        if not isinstance(exc, (OperationalError, driver_error)):
            return False
        if not self.is_sqlite:
            return True
        return any(words in str(getattr(exc, "orig", None) or exc).lower() for words in _SQLITE_TRANSIENT)

    def write(self, fn: Callable[[], T], *, what: str, retry_s: float | None = None) -> T:
        """`fn()` (a whole transaction), tried again with backoff while it fails transiently.

        Gives up after `retry_s` (default `write_retry_s`) with `StoreUnavailable`; an error that
        does not pass (a constraint, a missing table) is raised at once. `fn` must be safe to
        repeat: its transaction either committed or rolled back before it is tried again.
        """
        transient = (OperationalError, self.engine.dialect.loaded_dbapi.OperationalError)
        try:  # the common case, without the retry machinery (this is on every job's path)
            return fn()
        except transient as exc:
            if self._is_read_only(exc):
                raise self.read_only_error(what, _first_line(exc)) from None
            if not self.is_transient(exc):
                raise StoreUnavailable(f"{what}: database {mask_url(self.url)} failed: {_first_line(exc)}") from None
        budget_s = self.write_retry_s if retry_s is None else retry_s

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("workbench: %s: database busy or away (%s); trying again (attempt %d)",
                        what, _first_line(exc) if exc else "?", state.attempt_number)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self.is_transient),
            wait=tenacity.wait_exponential_jitter(initial=0.05, max=2.0),
            stop=tenacity.stop_after_delay(budget_s),
            before_sleep=note,
            reraise=True,
        )
        try:
            return retrying(fn)
        except transient as exc:
            raise StoreUnavailable(
                f"{what}: database {mask_url(self.url)} failed for {budget_s:g} s: {_first_line(exc)}"
            ) from None

    @contextlib.contextmanager
    def _wrap_errors(self) -> Iterator[None]:
        try:
            yield
        # The driver's own error too: BEGIN goes straight to it (see `_sqlite_pragmas`).
        except (OperationalError, self.engine.dialect.loaded_dbapi.OperationalError) as exc:
            if self._is_read_only(exc):
                raise self.read_only_error("cannot write the database", _first_line(exc)) from None
            raise StoreUnavailable(f"database {mask_url(self.url)} failed: {_first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()


def _json_text(value: Any) -> str:
    """JSON columns' text, by orjson: several times faster than `json` (every lease row carries
    JSON, read and written inside the allocation lock). NaN becomes null, as PostgreSQL requires.
    `json` takes what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_value(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # written by `json` before: NaN and Infinity
        return json.loads(text)


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


class DriverStatement:
    """A Core statement run on the driver's own connection, under a SQLAlchemy `Connection`.

    Why not `Connection.execute`: the allocation lock serializes every process's allocations, and
    for their few short statements SQLAlchemy's per-execution work (execution context, parameter
    and result processing, events) took several times SQLite's own time (py-spy of
    `benchmarks/allocator.py` with 8 processes). What stays SQLAlchemy's: the SQL (compiled once
    for the connection's dialect), the parameter order and every value's conversion (the column
    types' own bind and result processors), so a row written here reads back through the ORM
    unchanged. SQLite only (its driver takes positional parameters); on other databases the
    statement runs through SQLAlchemy as usual. Statements with expanding `IN` lists are refused.
    """

    def __init__(self, statement: Any, *, column_keys: list[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = column_keys
        self._sqlite: tuple[str, list[tuple[str, Any, bool, Any]], list[tuple[int, Any]]] | None = None

    def _compile(self, dialect: Any) -> tuple[str, list[tuple[str, Any, bool, Any]], list[tuple[int, Any]]]:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"{name}: an expanding IN list cannot run on the driver; spell the values out")
            binds.append((name, bind.value, bind.required, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        processors = (c.type.dialect_impl(dialect).result_processor(dialect, None) for c in self.statement.exported_columns)
        results = [(i, p) for i, p in enumerate(processors) if p is not None]  # most columns need none
        return compiled.string, binds, results

    def run(self, connection: Connection, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute with `params` (by bind name); the rows it returns, as plain tuples."""
        params = params or {}
        dialect = connection.dialect
        if dialect.name != "sqlite":
            result = connection.execute(self.statement, params)
            return [tuple(r) for r in result.all()] if result.returns_rows else []
        if self._sqlite is None:
            self._sqlite = self._compile(dialect)
        sql, binds, results = self._sqlite
        arguments = []
        for name, default, required, process in binds:
            if name in params:
                value = params[name]
            elif required:
                raise KeyError(f"{name!r}: a value is required for this statement")
            else:
                value = default
            arguments.append(value if process is None else process(value))
        try:
            rows: list[tuple[Any, ...]] = connection.connection.driver_connection.execute(sql, arguments).fetchall()  # type: ignore[union-attr]
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, arguments, exc, dialect.loaded_dbapi.Error) from None
        if not results:
            return rows
        out = []
        for row in rows:
            columns = list(row)
            for i, process in results:
                if columns[i] is not None:
                    columns[i] = process(columns[i])
            out.append(tuple(columns))
        return out
