"""The SQLite transport's tables and its atomic claim.

One table holds every queue's messages. A row is *visible* when ``visible_at <= now``: a new
message at once, a delayed one at its ETA, a delivered one when its visibility timeout passes.
``in_flight`` marks a row handed to a consumer, so an expired delivery (visible again, still
marked) can be told apart from a delayed one (invisible, not marked) when counting and purging.

Consumers claim rows inside ``BEGIN IMMEDIATE``: the write lock makes "pick the first visible
rows, then hide them" one step that no other process can interleave with, so a message is never
handed to two consumers at once. SQLite 3.35 and later do it in one statement with
``RETURNING``; older ones (Ubuntu 20.04 ships 3.31) read then update in the same transaction,
which the write lock makes just as atomic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

from taskq.transports.sqlite_db import Schema

__all__ = ["SCHEMA", "ClaimedRow", "claim_returning", "claim_select_update", "claim"]

SCHEMA = Schema(
    component="transport",
    version=1,
    statements=(
        # AUTOINCREMENT: ids are never reused, so id order is publish order (FIFO) and a stale
        # delivery can never match a new message that took a freed id.
        """CREATE TABLE IF NOT EXISTS taskq_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            visible_at REAL NOT NULL,
            in_flight INTEGER NOT NULL DEFAULT 0,
            deliveries INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            payload BLOB NOT NULL
        )""",
        # Claim order: walk a queue by priority then id, skipping rows not yet visible.
        "CREATE INDEX IF NOT EXISTS taskq_messages_order "
        "ON taskq_messages (queue, priority DESC, id, visible_at)",
        # When the next row of a queue becomes visible: one index lookup.
        "CREATE INDEX IF NOT EXISTS taskq_messages_visible ON taskq_messages (queue, visible_at)",
        """CREATE TABLE IF NOT EXISTS taskq_broadcasts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            exchange TEXT NOT NULL,
            created_at REAL NOT NULL,
            payload BLOB NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS taskq_broadcasts_created ON taskq_broadcasts (created_at)",
    ),
    additions=(
        # Direct exchanges: which queues a routing key reaches (``send_direct``).
        """CREATE TABLE IF NOT EXISTS taskq_bindings (
            exchange TEXT NOT NULL,
            routing_key TEXT NOT NULL,
            queue TEXT NOT NULL,
            PRIMARY KEY (exchange, routing_key, queue)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS taskq_bindings_queue ON taskq_bindings (queue)",
    ),
)


class ClaimedRow(NamedTuple):
    id: int
    priority: int
    #: Including this delivery (1 the first time).
    deliveries: int
    payload: bytes


_PICK = (
    "SELECT id FROM taskq_messages INDEXED BY taskq_messages_order "
    "WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?"
)


def claim_returning(
    conn: sqlite3.Connection, queue: str, now: float, until: float, limit: int
) -> list[ClaimedRow]:
    """Hide up to ``limit`` visible rows of ``queue`` until ``until``, in one statement."""
    rows = conn.execute(
        "UPDATE taskq_messages SET in_flight = 1, visible_at = ?, deliveries = deliveries + 1 "
        f"WHERE id IN ({_PICK}) RETURNING id, priority, deliveries, payload",
        (until, queue, now, limit),
    ).fetchall()
    # RETURNING yields rows in no promised order: restore the claim order.
    claimed = [ClaimedRow(*row) for row in rows]
    claimed.sort(key=lambda row: (-row.priority, row.id))
    return claimed


def claim_select_update(
    conn: sqlite3.Connection, queue: str, now: float, until: float, limit: int
) -> list[ClaimedRow]:
    """The same claim for SQLite before 3.35: read the rows, then hide them."""
    rows = conn.execute(
        "SELECT id, priority, deliveries + 1, payload FROM taskq_messages "
        "INDEXED BY taskq_messages_order "
        "WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?",
        (queue, now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE taskq_messages SET in_flight = 1, visible_at = ?, deliveries = deliveries + 1 "
        "WHERE id = ?",
        [(until, row[0]) for row in rows],
    )
    return [ClaimedRow(*row) for row in rows]


#: The claim this machine's SQLite supports. Must run inside a write transaction.
claim: Callable[[sqlite3.Connection, str, float, float, int], list[ClaimedRow]] = (
    claim_returning if sqlite3.sqlite_version_info >= (3, 35, 0) else claim_select_update
)
