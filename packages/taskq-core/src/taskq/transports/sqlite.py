"""``sqlite://``: taskq's embedded default broker, one file shared by every process on a machine.

With no broker configured, clients and workers meet in ``taskq.sqlite3`` in the working
directory, so a new user runs a worker without a server. URL forms (resolved when the
transport is built):

- ``sqlite://`` (or ``sqlite:///``, or just ``sqlite``): ``./taskq.sqlite3``;
- ``sqlite:///relative/path.db``: relative to the working directory;
- ``sqlite:////abs/path.db``: absolute.

Semantics, the same as ``memory://``:

- **Order.** :meth:`~SQLiteTransport.fetch` serves earlier queues first; within a queue, higher
  ``priority`` first (AMQP's rule, as on RabbitMQ: 9 beats 0; the envelope's
  ``properties.priority``, 0 when absent; any integer), then publish order.
- **Visibility.** A fetched message is hidden until acked, rejected, dead-lettered, or until its
  visibility timeout passes; then it is delivered again with ``deliveries`` + 1, in its old
  place in the queue. :meth:`~SQLiteTransport.extend` pushes the deadline further.
- **Delay.** ``publish(..., eta=t)`` stores the row hidden until ``t``: it waits in the file,
  survives restarts, and is handed out once, when due, in its place by publish order.
- **Requeue.** ``reject(requeue=True)`` makes it visible at once, in its old place (as
  RabbitMQ's requeue does), without resetting ``deliveries``.
- **Counting.** :meth:`~SQLiteTransport.queue_length` and :meth:`~SQLiteTransport.purge` cover
  *waiting* messages: ready, delayed, and deliveries whose timeout passed; not deliveries a
  consumer still holds, so purging never pulls a message from under a running task.
- **Direct exchanges.** ``declare_queue`` with an exchange stores the binding in
  ``taskq_bindings``; ``send_direct`` inserts one row per queue bound with the routing key, in
  the same transaction that reads the bindings; ``delete_queue`` drops the queue's rows and
  bindings. ``x-expires`` is not honoured: the client deletes its reply queue itself.
- **Stale deliveries.** Acking, rejecting, extending or dead-lettering a delivery that has
  since been handed to another consumer (its timeout passed) does nothing: that consumer owns
  the message now.

Options (``broker_transport_options``):

- ``visibility_timeout`` (3600 s, kombu's Redis default): how long a delivery stays hidden.
  A worker's clean shutdown returns its deliveries at once, so the timeout only matters after a
  crash; it must outlast the time a prefetched message waits plus the time its task runs
  (unless the worker extends it), or the task runs twice. An hour keeps long tasks safe; a
  crashed worker's messages come back an hour later.
- ``polling_interval`` (0.1 s): the longest sleep of an idle consumer between looks at the
  file, so a message published by another process waits at most this long. Sleeps start at
  5 ms and double while nothing arrives; a publish in the same process wakes consumers at once.
- ``busy_timeout`` (10 s): how long to wait for another process's write lock before failing.
- ``broadcast_retention`` (60 s): how long broadcasts are kept for slow subscribers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.options import BROKER_OPTIONS, seconds_option
from taskq.transports.polling import Backoff, wakeup_for
from taskq.transports.sqlite_broadcast import BroadcastHub
from taskq.transports.sqlite_db import Database
from taskq.transports.sqlite_queue import SCHEMA, ClaimedRow, claim
from taskq.transports.unacked import Unacked
from taskq_protocol import Envelope, ProtocolError

__all__ = ["SQLiteTransport", "RowHandle"]

logger = logging.getLogger("taskq.transports.sqlite")

_CHANNEL = "messages"
_INSERT = (
    "INSERT INTO taskq_messages (queue, priority, visible_at, created_at, payload) "
    "VALUES (?, ?, ?, ?, ?)"
)
# A delivery is still its consumer's while the row is in flight with the same delivery count.
_MINE = "id = ? AND deliveries = ? AND in_flight = 1"


class RowHandle(NamedTuple):
    """What a :class:`~taskq.contracts.Delivery` of this transport points at: one delivery of
    one row (the pair changes at every delivery, so a stale handle matches nothing)."""

    id: int
    deliveries: int


class SQLiteTransport:
    """A broker in one SQLite file, safe for many threads and processes on one machine."""

    schemes: tuple[str, ...] = ("sqlite",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.visibility_timeout = seconds_option(
            options, "visibility_timeout", 3600.0, BROKER_OPTIONS
        )
        self.polling_interval = seconds_option(options, "polling_interval", 0.1, BROKER_OPTIONS)
        busy_timeout = seconds_option(options, "busy_timeout", 10.0, BROKER_OPTIONS)
        retention = seconds_option(options, "broadcast_retention", 60.0, BROKER_OPTIONS)
        self._db = Database(url, SCHEMA, error=TransportError, busy_timeout=busy_timeout)
        self._broadcasts = BroadcastHub(
            self._db, retention=retention, max_poll=self.polling_interval
        )
        self._unacked = Unacked(RowHandle, "SQLite")

    @property
    def path(self) -> str:
        """The database file's absolute path."""
        return self._db.path

    def connect(self) -> None:
        self._db.connection()

    def close(self) -> None:
        self._broadcasts.stop()
        unacked = self._unacked.take_all()
        if unacked:
            now = time.time()
            with self._db.write() as conn:
                conn.executemany(
                    f"UPDATE taskq_messages SET in_flight = 0, visible_at = ? WHERE {_MINE}",
                    [(now, *handle) for handle in unacked],
                )
            self._notify()
        self._db.close()

    def declare_queue(self, spec: QueueSpec) -> None:
        """A queue is the rows that name it; only a binding to a named exchange is stored.

        Any priority is honoured; ``x-expires`` is not (the queue lives until deleted).
        """
        name = check_queue(spec.name)
        if spec.exchange:
            with self._db.write() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO taskq_bindings (exchange, routing_key, queue) "
                    "VALUES (?, ?, ?)",
                    (spec.exchange, spec.routing_key, name),
                )

    def delete_queue(self, name: str) -> None:
        """Drop every row of the queue (held ones too: their acks then do nothing) and its
        bindings."""
        queue = check_queue(name)
        with self._db.write() as conn:
            conn.execute("DELETE FROM taskq_messages WHERE queue = ?", (queue,))
            conn.execute("DELETE FROM taskq_bindings WHERE queue = ?", (queue,))

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        self.publish_many([(queue, envelope, eta)])

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        now = time.time()
        rows = [
            (
                check_queue(queue),
                envelope.priority,
                visible_at(eta, now),
                now,
                envelope.encode(),
            )
            for queue, envelope, eta in items
        ]
        if not rows:
            return
        with self._db.write() as conn:
            conn.executemany(_INSERT, rows)
        self._notify()

    def _notify(self) -> None:
        wakeup_for(self._db.path, _CHANNEL).notify()

    # -- consuming ------------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        check_limit(limit)
        deadline = time.monotonic() + max(timeout, 0.0)
        backoff = Backoff(0.005, self.polling_interval)
        while True:
            wakeup = wakeup_for(self._db.path, _CHANNEL)
            seen = wakeup.generation
            now = time.time()
            next_visible = self._next_visible(names)
            if next_visible is not None and next_visible <= now:
                deliveries = self._claim(names, limit)
                if deliveries:
                    return deliveries
                # Another consumer was faster: look again at once (the pause below is 0).
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            pause = min(backoff.next(), remaining)
            if next_visible is not None:
                pause = min(pause, next_visible - now)
            wakeup.wait(seen, pause)

    def _next_visible(self, queues: list[str]) -> float | None:
        """When the earliest row of these queues is (or was) visible; None when all are empty.

        A read without the write lock, so idle consumers never hold up publishers.
        """
        found: float | None = None
        for queue in queues:
            (value,) = self._db.query(
                "SELECT MIN(visible_at) FROM taskq_messages WHERE queue = ?", (queue,)
            )[0]
            if value is not None and (found is None or value < found):
                found = value
        return found

    def _claim(self, queues: list[str], limit: int) -> list[Delivery]:
        claimed: list[tuple[str, ClaimedRow]] = []
        with self._db.write() as conn:
            now = time.time()
            until = now + self.visibility_timeout
            for queue in queues:
                wanted = limit - len(claimed)
                if wanted <= 0:
                    break
                claimed.extend((queue, row) for row in claim(conn, queue, now, until, wanted))
        deliveries: list[Delivery] = []
        broken: list[tuple[str, ClaimedRow, str]] = []
        for queue, row in claimed:
            try:
                envelope = Envelope.decode(row.payload)
            except ProtocolError as exc:
                broken.append((queue, row, str(exc)))
                continue
            handle = RowHandle(row.id, row.deliveries)
            deliveries.append(
                Delivery(
                    queue=queue,
                    envelope=envelope,
                    tag=f"{row.id}.{row.deliveries}",
                    deliveries=row.deliveries,
                    handle=handle,
                )
            )
        if broken:
            self._dead_letter_unreadable(broken)
        self._unacked.add(deliveries)
        return deliveries

    def _dead_letter_unreadable(self, broken: list[tuple[str, ClaimedRow, str]]) -> None:
        # Not an envelope, so no header can say why: the bytes move to the dead-letter queue
        # as they are, and the reason goes to the log.
        now = time.time()
        with self._db.write() as conn:
            for queue, row, reason in broken:
                logger.error(
                    "message %d on %r is not a readable envelope, moved to %r: %s",
                    row.id,
                    queue,
                    dead_letter_queue(queue),
                    reason,
                )
                conn.execute(
                    "UPDATE taskq_messages SET queue = ?, in_flight = 0, deliveries = 0, "
                    f"visible_at = ? WHERE {_MINE}",
                    (dead_letter_queue(queue), now, row.id, row.deliveries),
                )

    # -- settling -------------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        if not handles:
            return
        with self._db.write() as conn:
            conn.executemany(f"DELETE FROM taskq_messages WHERE {_MINE}", handles)
        self._unacked.settled(handles)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        handles = self._unacked.handles([delivery])
        with self._db.write() as conn:
            if requeue:
                conn.execute(
                    f"UPDATE taskq_messages SET in_flight = 0, visible_at = ? WHERE {_MINE}",
                    (time.time(), *handles[0]),
                )
            else:
                conn.execute(f"DELETE FROM taskq_messages WHERE {_MINE}", handles[0])
        self._unacked.settled(handles)
        if requeue:
            self._notify()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        handles = self._unacked.handles([delivery])
        envelope = dead_lettered(delivery.envelope, reason)
        now = time.time()
        with self._db.write() as conn:
            gone = conn.execute(f"DELETE FROM taskq_messages WHERE {_MINE}", handles[0]).rowcount
            if gone:
                conn.execute(
                    _INSERT,
                    (
                        dead_letter_queue(delivery.queue),
                        envelope.priority,
                        now,
                        now,
                        envelope.encode(),
                    ),
                )
            else:
                logger.info(
                    "not dead-lettering %s from %r: it was redelivered to another consumer",
                    delivery.tag,
                    delivery.queue,
                )
        self._unacked.settled(handles)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Hide the deliveries until ``seconds`` from now at least; never shortens a timeout."""
        check_seconds(seconds)
        handles = self._unacked.handles(deliveries)
        if not handles:
            return
        until = time.time() + seconds
        with self._db.write() as conn:
            conn.executemany(
                f"UPDATE taskq_messages SET visible_at = MAX(visible_at, ?) WHERE {_MINE}",
                [(until, *handle) for handle in handles],
            )

    # -- queues ---------------------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        with self._db.write() as conn:
            return conn.execute(
                "DELETE FROM taskq_messages WHERE queue = ? AND (in_flight = 0 OR visible_at <= ?)",
                (check_queue(queue), time.time()),
            ).rowcount

    def queue_length(self, queue: str) -> int:
        return int(
            self._db.query(
                "SELECT COUNT(*) FROM taskq_messages "
                "WHERE queue = ? AND (in_flight = 0 OR visible_at <= ?)",
                (check_queue(queue), time.time()),
            )[0][0]
        )

    # -- direct exchanges -----------------------------------------------------------------------

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        check_queue(exchange, "an exchange")
        now = time.time()
        payload = envelope.encode()
        with self._db.write() as conn:
            queues = [
                row[0]
                for row in conn.execute(
                    "SELECT queue FROM taskq_bindings WHERE exchange = ? AND routing_key = ? "
                    "ORDER BY queue",
                    (exchange, routing_key),
                )
            ]
            conn.executemany(
                _INSERT, [(queue, envelope.priority, now, now, payload) for queue in queues]
            )
        if queues:
            self._notify()
        return bool(queues)

    # -- fanout ---------------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        self._broadcasts.publish(check_queue(exchange, "an exchange"), envelope)

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        return self._broadcasts.subscribe(check_queue(exchange, "an exchange"), callback)

    def __repr__(self) -> str:
        return f"<SQLiteTransport {self._db.path}>"
