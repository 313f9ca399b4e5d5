"""The database: one SQLAlchemy engine, schema by alembic migration, safe concurrent allocation.

SQLite (the default) runs in WAL mode so readers never block the writer, with a busy timeout so
concurrent writers wait instead of failing. `Store.immediate()` opens a transaction that takes the
write lock at its start (`BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on
PostgreSQL): an allocation reads free capacity and writes its lease with no other allocation in
between, so two processes never hand out the same capacity.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from workbench.errors import StoreUnavailable

_MIGRATIONS = Path(__file__).parent / "migrations"
# One advisory-lock key for allocations on PostgreSQL ("wballoc" in ASCII, fits in a bigint).
_PG_ALLOCATION_LOCK = 0x7762616C6C6F63
_PG_MIGRATION_LOCK = 0x77626D696772


def mask_url(url: str) -> str:
    """The URL with its password replaced, safe to show in messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event emit BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """The workbench's database. Create one per process (the `Workbench` object holds it)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                try:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailable(f"cannot create the database folder for {url}: {exc.strerror}") from None
        try:
            kwargs: dict[str, Any] = {"future": True}
            if not self.is_sqlite:
                kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 5})
            self.engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise StoreUnavailable(f"database URL {mask_url(url)!r} is not valid: {exc}") from None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._immediate_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"<Store {mask_url(self.url)}>"

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

        try:
            with self._migration_lock(), self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                command.upgrade(self._alembic_config(conn), "heads")
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database at {mask_url(self.url)}: {_first_line(exc)}") from None
        except DBAPIError as exc:
            raise StoreUnavailable(f"database error at {mask_url(self.url)}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if not self.is_sqlite or ":memory:" in self.url:
            yield
            return
        lock_path = Path(self.url.split("///", 1)[-1] + ".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    def allocation_session(self) -> Session:
        """A session for `immediate(session)` that a caller keeps, with its connection, across
        transactions (one thread at a time). The slices service holds one for its life: the
        pool checkout, reset and session set-up a fresh unit of work pays cost a third of an
        allocation's time inside the lock."""
        with self._wrap_errors():
            connection = self.engine.execution_options(sqlite_begin="IMMEDIATE").connect()
        return Session(bind=connection, expire_on_commit=False)

    @contextlib.contextmanager
    def immediate(self, session: Session | None = None) -> Iterator[Session]:
        """A unit of work that holds the allocation lock from its first statement.

        `session` (from `allocation_session()`) runs it on that session's held connection; it
        forgets the objects it loaded when the unit ends, so nothing stale outlives it."""
        held = session is not None
        unit = session if session is not None else self._immediate_sessions()
        try:
            with self._wrap_errors(), contextlib.nullcontext(unit) if held else unit as s, s.begin():
                if not self.is_sqlite:
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ALLOCATION_LOCK})
                else:
                    s.connection()  # emits BEGIN IMMEDIATE now, not at the first query
                yield s
        finally:
            if held:
                unit.expunge_all()

    @contextlib.contextmanager
    def _wrap_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreUnavailable(f"database {mask_url(self.url)} failed: {_first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__
