"""Fanout over SQLite: remote control and events for every subscriber on the machine.

A broadcast is a row in ``taskq_broadcasts`` (increasing id, creation time). A subscriber
starts at the highest id that exists when it subscribes and receives every later row of its
exchange, read by one background thread per transport instance. This is pub/sub, as Redis does
it for Celery: at most once, nothing is replayed to a late subscriber, and rows older than the
retention (60 s by default) are pruned, so a subscriber that stalls longer misses them rather
than being flooded. Callbacks run on the polling thread, one at a time, in id order; one that
raises is logged and the others still run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from taskq.contracts import TransportError
from taskq.transports.polling import Backoff, wakeup_for
from taskq.transports.sqlite_db import Database
from taskq_protocol import Envelope, ProtocolError

__all__ = ["BroadcastHub"]

logger = logging.getLogger("taskq.transports.sqlite")

_CHANNEL = "broadcasts"
_BATCH = 1000
_PRUNE_EVERY = 1.0


@dataclass(eq=False, slots=True)
class _Subscription:
    exchange: str
    callback: Callable[[Envelope], None]
    #: The last broadcast id this subscriber has seen (or skipped).
    cursor: int
    active: bool = True


class BroadcastHub:
    """The broadcasts of one transport instance: publishing, and the thread that polls."""

    def __init__(self, db: Database, *, retention: float, max_poll: float) -> None:
        self._db = db
        self._retention = retention
        self._max_poll = max_poll
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._next_prune = 0.0

    def publish(self, exchange: str, envelope: Envelope) -> None:
        payload = envelope.encode()
        now = time.time()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO taskq_broadcasts (exchange, created_at, payload) VALUES (?, ?, ?)",
                (exchange, now, payload),
            )
            if now >= self._next_prune:
                conn.execute(
                    "DELETE FROM taskq_broadcasts WHERE created_at < ?", (now - self._retention,)
                )
                self._next_prune = now + min(_PRUNE_EVERY, self._retention)
        wakeup_for(self._db.path, _CHANNEL).notify()

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        latest = self._db.query("SELECT COALESCE(MAX(id), 0) FROM taskq_broadcasts")[0][0]
        subscription = _Subscription(exchange, callback, int(latest))
        with self._lock:
            self._subscriptions.append(subscription)
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._stop,),
                    name=f"taskq-sqlite-broadcasts {self._db.path}",
                    daemon=True,
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                subscription.active = False
                if subscription in self._subscriptions:
                    self._subscriptions.remove(subscription)

        return unsubscribe

    def stop(self) -> None:
        """Drop every subscription and wait for the polling thread to end."""
        with self._lock:
            for subscription in self._subscriptions:
                subscription.active = False
            self._subscriptions.clear()
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if thread is None or stop is None:
            return
        stop.set()
        wakeup_for(self._db.path, _CHANNEL).notify()
        if thread is not threading.current_thread():
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        backoff = Backoff(0.005, self._max_poll)
        while not stop.is_set():
            with self._lock:
                subscriptions = list(self._subscriptions)
                if not subscriptions:
                    # Nobody listens: end; the next subscribe starts a new thread.
                    if self._stop is stop:
                        self._thread = self._stop = None
                    return
            wakeup = wakeup_for(self._db.path, _CHANNEL)
            seen = wakeup.generation
            try:
                delivered = self._poll_once(subscriptions)
            except TransportError as exc:
                logger.warning("reading broadcasts failed, will retry: %s", exc)
                delivered = False
            if delivered:
                backoff.reset()
            else:
                wakeup.wait(seen, backoff.next())

    def _poll_once(self, subscriptions: list[_Subscription]) -> bool:
        exchanges = sorted({s.exchange for s in subscriptions})
        marks = ", ".join("?" * len(exchanges))
        rows = self._db.query(
            f"SELECT id, exchange, payload FROM taskq_broadcasts WHERE id > ? "
            f"AND exchange IN ({marks}) ORDER BY id LIMIT {_BATCH}",
            (min(s.cursor for s in subscriptions), *exchanges),
        )
        for row_id, exchange, payload in rows:
            for subscription in subscriptions:
                if (
                    subscription.active
                    and subscription.exchange == exchange
                    and row_id > subscription.cursor
                ):
                    _deliver(subscription, row_id, payload)
        if rows:
            last = rows[-1][0]
            for subscription in subscriptions:
                subscription.cursor = max(subscription.cursor, last)
        return bool(rows)


def _deliver(subscription: _Subscription, row_id: int, payload: bytes) -> None:
    try:
        envelope = Envelope.decode(payload)
    except ProtocolError as exc:
        logger.error("skipping broadcast %d on %r: %s", row_id, subscription.exchange, exc)
        return
    try:
        subscription.callback(envelope)
    except Exception:
        logger.exception("a subscriber of %r failed on broadcast %d", subscription.exchange, row_id)
