"""The allocation transaction and the lock every process queues on for it.

Every slice decision runs inside one transaction (`store.locked()`: `BEGIN IMMEDIATE` on SQLite)
so two processes never hand out the same capacity and a failed request leaves nothing behind.
Kept apart from the verbs because it is the one piece that knows about files, threads and
connections; the decisions above it see only a `Txn`.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, Self

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from workbench.store.engine import DriverStatement, Store


class Txn:
    """One allocation transaction: its connection, on which the hot statements run directly, and
    a session joined to the same transaction, made only when a slower path needs the ORM."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(bind=self.connection, expire_on_commit=False)
        return self._session

    def run(self, statement: DriverStatement, **params: Any) -> list[tuple[Any, ...]]:
        if self._session is not None:
            self._session.flush()  # what the ORM holds back is written first
        return statement.run(self.connection, params)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._session is not None:
            try:
                if exc_type is None:
                    self._session.flush()  # before the transaction commits
            finally:
                self._session.close()  # forgets what it loaded: nothing stale outlives the transaction


class AllocationLock:
    """Allocation transactions (`store.locked()`), queued behind a file lock on SQLite.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so under contention most of the
    time goes to sleeping; a blocking `flock` hands the lock over as soon as it is free. The
    `BEGIN IMMEDIATE` inside stays the guarantee (other writers need not take the file lock).
    The connection is held for the service's life (the pool checkout and reset cost more than the
    allocation's statements).
    """

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._lock_file: IO[str] | None = None
        self._connection: Connection | None = None
        # Threads of one process (a Jupyter server, a Panel app) share the service: they queue
        # here first, since a `flock` on one open file does not exclude its own process.
        self._thread_lock = threading.Lock()

    def close(self) -> None:
        with self._thread_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        store = self._store()
        path = store.url.split("///", 1)[-1] if store.is_sqlite else ""
        if path == ":memory:":  # one connection per thread: nothing to hold, nobody else to queue
            with store.allocation_connection() as connection, store.locked(connection), Txn(connection) as txn:
                yield txn
            return
        with self._thread_lock:
            if path and self._lock_file is None:
                try:
                    self._lock_file = open(path + ".alloc.lock", "a")  # noqa: SIM115 - held for the service's life
                except OSError as exc:
                    raise store.read_only_error("cannot allocate", exc.strerror or str(exc)) from None
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                if self._connection is None or self._connection.invalidated or self._connection.closed:
                    self._connection = store.allocation_connection()
                with store.locked(self._connection) as connection, Txn(connection) as txn:
                    yield txn
            finally:
                if self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
