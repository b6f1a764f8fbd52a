"""``sqlite://``: taskq's embedded default result store, one file shared on one machine.

Workers, prefork pool children and clients on one machine store and read results in the same
file (by default the broker's ``taskq.sqlite3``, in tables of their own). URL forms are the
SQLite transport's (:mod:`taskq.transports.sqlite_db`). Records are encoded by
:class:`~taskq.backends.codec.ResultCodec`, as any backend's are.

- **SUCCESS is final.** A write is one conditional update (or an insert for a new id) inside
  a write transaction, so a late STARTED or FAILURE from a task that ran twice cannot replace a
  stored SUCCESS, even racing it from another process.
- **Expiry.** ``expires`` seconds (``result_expires`` by default; ``None``: forever) after a
  write, a record reads as absent; expired rows are deleted by the next write after a minute.
- **Waiting.** :meth:`~SQLiteBackend.wait` polls, starting at 2 ms and backing off to
  ``polling_interval``; a write in the same process wakes it at once.
- **Chords** (rules in :mod:`taskq.backends.chords`): each report is one write transaction
  that records the part once per task id and, when the count reaches the size, claims the
  chord for the reporting task (until a lease ends) and hands the parts to it alone.
  ``chord_body_sent`` marks the chord done and drops its parts; the done mark outlives them, so
  a late duplicate cannot start the count again.

Options (``result_backend_transport_options``): ``busy_timeout`` (10 s), ``polling_interval``
(0.05 s).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.backends.chords import check_lease, check_size, chord_expiry, in_group_order
from taskq.backends.codec import ResultCodec
from taskq.contracts import CHORD_CLAIM_LEASE, BackendError, BackendOptions, ChordPart
from taskq.transports.options import BACKEND_OPTIONS, seconds_option
from taskq.transports.polling import Backoff, wakeup_for
from taskq.transports.sqlite_db import Database, Schema
from taskq_protocol import ResultMeta, states

__all__ = ["SQLiteBackend", "SCHEMA"]

SCHEMA = Schema(
    component="backend",
    version=2,
    statements=(
        """CREATE TABLE IF NOT EXISTS taskq_results (
            task_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            payload BLOB NOT NULL,
            date_done REAL,
            expires_at REAL
        )""",
        "CREATE INDEX IF NOT EXISTS taskq_results_expires ON taskq_results (expires_at) "
        "WHERE expires_at IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS taskq_groups (
            group_id TEXT PRIMARY KEY,
            payload BLOB NOT NULL,
            expires_at REAL
        )""",
        """CREATE TABLE IF NOT EXISTS taskq_chords (
            group_id TEXT PRIMARY KEY,
            size INTEGER,
            claimed_by TEXT,
            claim_until REAL,
            done INTEGER NOT NULL DEFAULT 0,
            expires_at REAL
        )""",
        """CREATE TABLE IF NOT EXISTS taskq_chord_parts (
            group_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            group_index INTEGER,
            payload BLOB NOT NULL,
            PRIMARY KEY (group_id, task_id)
        )""",
    ),
)

_CHANNEL = "results"


@dataclass(frozen=True, slots=True)
class _ChordRow:
    size: int | None
    claimed_by: str | None
    claim_until: float
    done: bool


_PRUNE_EVERY = 60.0
_CHUNK = 500  # ids per IN (...): well under SQLite's oldest limit of 999 variables
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_READY = tuple(sorted(states.READY_STATES))


class SQLiteBackend:
    """A result store in one SQLite file, safe for many threads and processes on one machine."""

    schemes: tuple[str, ...] = ("sqlite",)

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.url = url
        self.codec = ResultCodec.from_options(options)
        self.expires = options.expires
        extra = options.transport_options
        self.polling_interval = seconds_option(extra, "polling_interval", 0.05, BACKEND_OPTIONS)
        busy_timeout = seconds_option(extra, "busy_timeout", 10.0, BACKEND_OPTIONS)
        self._db = Database(url, SCHEMA, error=BackendError, busy_timeout=busy_timeout)
        self._next_prune = 0.0

    @property
    def path(self) -> str:
        """The database file's absolute path."""
        return self._db.path

    def _expires_at(self, expires: float | None, now: float) -> float | None:
        seconds = self.expires if expires is None else expires
        return None if seconds is None else now + seconds

    # -- task results ---------------------------------------------------------------------------

    def store(self, meta: ResultMeta, *, expires: float | None = None) -> None:
        self.store_many([meta], expires=expires)

    def store_many(self, metas: Iterable[ResultMeta], *, expires: float | None = None) -> None:
        rows = [
            (
                meta.status,
                self.codec.encode_meta(meta),
                None if meta.date_done is None else meta.date_done.timestamp(),
                meta.task_id,
            )
            for meta in metas
        ]
        if not rows:
            return
        with self._db.write() as conn:
            now = time.time()
            expires_at = self._expires_at(expires, now)
            for status, payload, date_done, task_id in rows:
                # In order, one id at a time: a batch may hold STARTED then SUCCESS of one task.
                updated = conn.execute(
                    "UPDATE taskq_results SET status = ?, payload = ?, date_done = ?, "
                    "expires_at = ? WHERE task_id = ? "
                    "AND (status != ? OR expires_at <= ?)",
                    (status, payload, date_done, expires_at, task_id, states.SUCCESS, now),
                ).rowcount
                if not updated:  # a new id, or a SUCCESS that stays
                    conn.execute(
                        "INSERT OR IGNORE INTO taskq_results "
                        "(status, payload, date_done, expires_at, task_id) VALUES (?, ?, ?, ?, ?)",
                        (status, payload, date_done, expires_at, task_id),
                    )
            self._prune(conn, now)
        wakeup_for(self._db.path, _CHANNEL).notify()

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        conn.execute("DELETE FROM taskq_results WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM taskq_groups WHERE expires_at <= ?", (now,))
        conn.execute(
            "DELETE FROM taskq_chord_parts WHERE group_id IN "
            "(SELECT group_id FROM taskq_chords WHERE expires_at <= ?)",
            (now,),
        )
        conn.execute("DELETE FROM taskq_chords WHERE expires_at <= ?", (now,))

    def get(self, task_id: str) -> ResultMeta | None:
        rows = self._db.query(
            f"SELECT payload FROM taskq_results WHERE task_id = ? AND {_LIVE}",
            (task_id, time.time()),
        )
        return self.codec.decode_meta(rows[0][0], task_id) if rows else None

    def wait(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, ResultMeta]:
        pending = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultMeta] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff(0.002, self.polling_interval)
        while pending:
            wakeup = wakeup_for(self._db.path, _CHANNEL)
            seen = wakeup.generation
            for task_id, payload in self._ready_rows(pending):
                ready[task_id] = self.codec.decode_meta(payload, task_id)
            pending = [task_id for task_id in pending if task_id not in ready]
            remaining = None if deadline is None else deadline - time.monotonic()
            if not pending or (remaining is not None and remaining <= 0):
                break
            pause = backoff.next()
            wakeup.wait(seen, pause if remaining is None else min(pause, remaining))
        return ready

    def _ready_rows(self, task_ids: list[str]) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        states_in = ", ".join("?" * len(_READY))
        now = time.time()
        for start in range(0, len(task_ids), _CHUNK):
            chunk = task_ids[start : start + _CHUNK]
            found.extend(
                self._db.query(
                    f"SELECT task_id, payload FROM taskq_results WHERE task_id IN "
                    f"({', '.join('?' * len(chunk))}) AND status IN ({states_in}) AND {_LIVE}",
                    (*chunk, *_READY, now),
                )
            )
        return found

    def forget(self, task_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM taskq_results WHERE task_id = ?", (task_id,))

    # -- groups ---------------------------------------------------------------------------------

    def save_group(self, group_id: str, result_tuple: list[Any]) -> None:
        payload = self.codec.encode_group(result_tuple)
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO taskq_groups (group_id, payload, expires_at) "
                "VALUES (?, ?, ?)",
                (group_id, payload, self._expires_at(None, time.time())),
            )

    def restore_group(self, group_id: str) -> list[Any] | None:
        rows = self._db.query(
            f"SELECT payload FROM taskq_groups WHERE group_id = ? AND {_LIVE}",
            (group_id, time.time()),
        )
        return self.codec.decode_group(rows[0][0]) if rows else None

    def delete_group(self, group_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM taskq_groups WHERE group_id = ?", (group_id,))

    # -- chords ---------------------------------------------------------------------------------

    def _chord(self, conn: sqlite3.Connection, group_id: str, now: float) -> _ChordRow:
        """The chord's row, created or renewed (call in a write transaction)."""
        seconds = chord_expiry(self.expires)
        expires_at = None if seconds is None else now + seconds
        row = conn.execute(
            "SELECT size, claimed_by, claim_until, done FROM taskq_chords "
            f"WHERE group_id = ? AND {_LIVE}",
            (group_id, now),
        ).fetchone()
        if row is None:
            # Absent, or expired: a chord that old starts over.
            conn.execute("DELETE FROM taskq_chord_parts WHERE group_id = ?", (group_id,))
            conn.execute(
                "INSERT OR REPLACE INTO taskq_chords (group_id, size, done, expires_at) "
                "VALUES (?, NULL, 0, ?)",
                (group_id, expires_at),
            )
            return _ChordRow(None, None, 0.0, False)
        conn.execute(
            "UPDATE taskq_chords SET expires_at = ? WHERE group_id = ?", (expires_at, group_id)
        )
        return _ChordRow(row[0], row[1], row[2] or 0.0, bool(row[3]))

    def set_chord_size(self, group_id: str, size: int) -> None:
        check_size(size)
        with self._db.write() as conn:
            chord = self._chord(conn, group_id, time.time())
            if chord.done or chord.claimed_by is not None:
                # A frozen chord applied again: a new run under the same group id.
                conn.execute("DELETE FROM taskq_chord_parts WHERE group_id = ?", (group_id,))
            conn.execute(
                "UPDATE taskq_chords SET size = ?, claimed_by = NULL, claim_until = NULL, "
                "done = 0 WHERE group_id = ?",
                (size, group_id),
            )

    def chord_part_done(
        self, part: ChordPart, *, lease: float = CHORD_CLAIM_LEASE
    ) -> list[ResultMeta] | None:
        check_lease(lease)
        payload = self.codec.encode_meta(part.meta)
        with self._db.write() as conn:
            now = time.time()
            chord = self._chord(conn, part.group_id, now)
            if chord.done:
                return None
            conn.execute(
                "INSERT OR IGNORE INTO taskq_chord_parts "
                "(group_id, task_id, group_index, payload) VALUES (?, ?, ?, ?)",
                (part.group_id, part.task_id, part.group_index, payload),
            )
            if chord.size is None:
                return None
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM taskq_chord_parts WHERE group_id = ?", (part.group_id,)
            ).fetchone()
            if count < chord.size:
                return None
            held = chord.claimed_by is not None and chord.claim_until > now
            if held and chord.claimed_by != part.task_id:
                return None
            conn.execute(
                "UPDATE taskq_chords SET claimed_by = ?, claim_until = ? WHERE group_id = ?",
                (part.task_id, now + lease, part.group_id),
            )
            rows = conn.execute(
                "SELECT task_id, group_index, payload FROM taskq_chord_parts "
                "WHERE group_id = ? ORDER BY rowid",
                (part.group_id,),
            ).fetchall()
        return in_group_order(
            (index, self.codec.decode_meta(data, task_id)) for task_id, index, data in rows
        )

    def chord_body_sent(self, group_id: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE taskq_chords SET done = 1, claimed_by = NULL, claim_until = NULL "
                "WHERE group_id = ?",
                (group_id,),
            )
            conn.execute("DELETE FROM taskq_chord_parts WHERE group_id = ?", (group_id,))

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self._db.path}>"
