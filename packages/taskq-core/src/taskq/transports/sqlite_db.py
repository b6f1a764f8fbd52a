"""One SQLite file shared safely by threads and processes: paths, connections, transactions.

The SQLite transport and result backend both sit on this. Its rules are SQLite's own:

- **URL → file.** ``sqlite://``, ``sqlite:///`` and a bare ``sqlite`` mean ``taskq.sqlite3`` in
  the working directory; ``sqlite:///relative/path.db`` is relative to the working directory and
  ``sqlite:////abs/path.db`` is absolute (three slashes, then the path; SQLAlchemy's rule). The
  path is resolved when the transport or backend is built, so a later ``chdir`` does not move
  it. A host, a query string or ``:memory:`` is refused: a file is what lets processes share.
- **One connection per thread.** A ``sqlite3.Connection`` must not be used by two threads at
  once, so each thread opens its own. A process forked while holding connections (a prefork
  pool child) opens new ones and never touches, not even closes, what it inherited: SQLite's
  locks are per process and closing an inherited handle could corrupt the parent's view.
- **WAL, busy timeout, BEGIN IMMEDIATE.** WAL lets readers run beside one writer; the busy
  timeout makes a writer wait for the lock instead of failing; every write transaction starts
  with ``BEGIN IMMEDIATE``, which takes the write lock up front, so a transaction never has to
  upgrade a read lock (which SQLite refuses without waiting, to avoid deadlock). ``synchronous
  = NORMAL``: safe against corruption and against a process crash; a power cut may lose the
  last transactions, as it would lose Redis's.
- **Schema on connect.** Tables are created on first use, idempotently and under the write
  lock, so processes starting together agree; ``taskq_schema`` records each component's
  version, and a file written by an incompatible taskq is refused instead of misread.

WAL needs a local filesystem (it shares memory between processes); NFS and SMB are not safe.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_FILENAME", "database_path", "Schema", "Database"]

#: The file ``sqlite://`` means, in the working directory.
DEFAULT_FILENAME = "taskq.sqlite3"

_SCHEMES = ("sqlite://", "sqlite")


# Every SQLite call of this process runs under one lock, and fork() takes it first. A child
# forked while another thread was inside SQLite (a worker replacing a pool child while its
# fetcher and consumer threads read and write) would otherwise inherit SQLite's internal
# mutexes locked and hang in its first sqlite3.connect(). Threads of one process also stop
# waking each other through SQLite's sleeping busy handler: they queue on this lock instead.
_calls = threading.RLock()


def _before_fork() -> None:
    _calls.acquire()


def _after_fork_in_parent() -> None:
    _calls.release()


def database_path(url: str, error: type[Exception]) -> str:
    """The absolute path of the database file ``url`` names (rules in the module docstring)."""
    lowered = url.lower()
    if lowered == "sqlite":
        rest = ""
    elif lowered.startswith(_SCHEMES[0]):
        rest = url[len(_SCHEMES[0]) :]
    else:
        raise error(f"{url!r} is not a sqlite:// URL")
    if "?" in rest:
        raise error(
            f"{url}: query parameters are not supported; put options in the transport options"
        )
    if rest and not rest.startswith("/"):
        raise error(
            f"{url}: a SQLite URL names a file, not a host; write sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:] or DEFAULT_FILENAME
    if path == ":memory:" or path.startswith("file:"):
        raise error(
            f"{url}: an in-memory or URI database cannot be shared between threads and "
            "processes; use memory:// for a broker or store inside one process"
        )
    return os.path.abspath(path)


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables one component (``transport``, ``backend``) keeps in the file."""

    component: str
    version: int
    statements: tuple[str, ...]
    #: Tables and indexes added since ``version`` without changing the rows it reads
    #: (``CREATE ... IF NOT EXISTS``): run whenever a process first opens the file, so a file
    #: written before they existed gains them instead of being refused.
    additions: tuple[str, ...] = ()


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so a dead thread's connection is freed."""


# Connections a forked child inherited: kept referenced so they are never closed (see above).
_inherited: list[sqlite3.Connection] = []
_databases: weakref.WeakSet[Database] = weakref.WeakSet()


class Database:
    """Per-thread connections to one SQLite file, with ``error`` raised for every failure.

    ``error`` is the component's error type (``TransportError``, ``BackendError``); its messages
    name the URL, so an operator knows which setting points at the unusable file.
    """

    def __init__(
        self,
        url: str,
        schema: Schema,
        *,
        error: type[Exception],
        busy_timeout: float,
    ) -> None:
        self.url = url
        self.path = database_path(url, error)
        self.schema = schema
        self.error = error
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._epoch = 0
        self._ready_pid: int | None = None
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        _databases.add(self)

    # -- connections ----------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema set up) on first use."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.epoch == self._epoch and local.pid == os.getpid():
            return conn
        conn = self._open_connection()
        local.conn, local.epoch, local.pid = conn, self._epoch, os.getpid()
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise self.error(
                f"{self.url}: the directory {directory} does not exist; create it or point "
                "the URL at another file"
            )
        if not os.path.exists(self.path) and not os.access(directory, os.W_OK):
            raise self.error(
                f"{self.url}: cannot create {self.path}: no write permission in {directory}"
            )
        with _calls, self.errors("cannot open the database"):
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,  # only so close() may close it from another thread
                factory=_Connection,
            )
        try:
            with _calls:
                with self.errors("cannot open the database"):
                    conn.execute("PRAGMA synchronous = NORMAL")
                self._set_up(conn)
        except BaseException:
            with _calls:
                conn.close()
            raise
        with self._lock:
            self._open.add(conn)
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        pid = os.getpid()
        if self._ready_pid == pid:
            return
        with self._lock:
            if self._ready_pid == pid:
                return
            self._enable_wal(conn)
            with self._transaction(conn, "cannot create the tables"):
                self._create_schema(conn)
            self._ready_pid = pid

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment alone with the file and may answer "locked" without
        # waiting, so retry for as long as any other lock would be waited for.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
                if mode.lower() != "wal":
                    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self.error(f"{self.url} ({self.path}): cannot enable WAL: {exc}") from exc
                time.sleep(0.01)
            except sqlite3.Error as exc:
                raise self.error(f"{self.url} ({self.path}): cannot enable WAL: {exc}") from exc
        if mode.lower() != "wal":
            raise self.error(
                f"{self.url} ({self.path}): SQLite refused WAL mode (journal_mode is {mode}); "
                "the file must be on a local filesystem"
            )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        schema = self.schema
        conn.execute(
            "CREATE TABLE IF NOT EXISTS taskq_schema "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM taskq_schema WHERE component = ?", (schema.component,)
        ).fetchone()
        if row is None:
            for statement in schema.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO taskq_schema (component, version) VALUES (?, ?)",
                (schema.component, schema.version),
            )
        elif row[0] != schema.version:
            raise self.error(
                f"{self.url} ({self.path}): its {schema.component} tables have schema version "
                f"{row[0]}, this taskq reads version {schema.version}; use the taskq that "
                "wrote it, or another file"
            )
        for statement in schema.additions:
            conn.execute(statement)

    # -- statements -----------------------------------------------------------------------------

    @contextmanager
    def errors(self, doing: str = "") -> Generator[None, None, None]:
        """Turn any ``sqlite3.Error`` inside the block into ``error``, naming the URL."""
        try:
            yield
        except sqlite3.Error as exc:
            what = f"{doing}: " if doing else ""
            raise self.error(f"{self.url} ({self.path}): {what}{exc}") from exc

    @contextmanager
    def write(self) -> Generator[sqlite3.Connection, None, None]:
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection.

        Commits when the block ends, rolls back if it raises.
        """
        conn = self.connection()
        with _calls, self._transaction(conn):
            yield conn

    @contextmanager
    def _transaction(
        self, conn: sqlite3.Connection, doing: str = ""
    ) -> Generator[None, None, None]:
        with self.errors(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one read statement outside any transaction; every row, read to the end."""
        conn = self.connection()
        with _calls, self.errors():
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close every connection this process opened; the next use opens new ones."""
        with self._lock:
            self._epoch += 1
            connections = list(self._open)
            self._open = weakref.WeakSet()
        for conn in connections:
            with _calls, self.errors("cannot close the database"):
                conn.close()

    def _after_fork_in_child(self) -> None:
        _inherited.extend(self._open)
        self._open = weakref.WeakSet()
        self._lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _calls  # noqa: PLW0603 - the child starts with a fresh, unowned lock
    _calls = threading.RLock()
    for database in list(_databases):
        database._after_fork_in_child()  # pyright: ignore[reportPrivateUsage]


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
