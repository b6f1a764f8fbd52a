"""The in-process broker behind ``memory://``: queues, delays and deliveries under one lock.

It keeps the SQLite transport's semantics with in-memory structures, per queue:

- ``ready``: a heap by (-priority, publish order) of messages that may be handed out;
- ``delayed``: a heap by visibility time of messages published with a future ETA;
- ``held``: messages out with a consumer, by id; scanned for expired deadlines on each fetch
  (a handful per consumer, so the scan is cheap and nothing lingers after an ack).

Direct exchanges are routing tables (exchange → ``(routing key, queue)`` pairs) filled by
``declare_queue`` and read by ``send_direct``.

A message moves between them; each move bumps its ``version``, and a heap entry whose version
is not the message's is stale and skipped when popped, so moves never search a heap.
Brokers are found by name: every ``memory://name`` transport in a process shares one, as
kombu's memory transport does.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from taskq_protocol import Envelope

__all__ = ["MemoryBroker", "StoredMessage", "broker_named"]

logger = logging.getLogger("taskq.transports.memory")

_K = TypeVar("_K", int, float)


class _Where(Enum):
    READY = "ready"
    DELAYED = "delayed"
    HELD = "held"
    GONE = "gone"


@dataclass(eq=False, slots=True)
class StoredMessage:
    seq: int
    queue: str
    priority: int
    #: The envelope's JSON encoding, decoded afresh for each delivery, as SQLite does.
    payload: bytes
    visible_at: float
    deliveries: int = 0
    in_flight: bool = False
    where: _Where = _Where.READY
    version: int = 0


@dataclass(slots=True)
class _Queue:
    ready: list[tuple[int, int, int, StoredMessage]] = field(
        default_factory=list[tuple[int, int, int, StoredMessage]]
    )
    delayed: list[tuple[float, int, int, StoredMessage]] = field(
        default_factory=list[tuple[float, int, int, StoredMessage]]
    )
    held: dict[int, StoredMessage] = field(default_factory=dict[int, StoredMessage])
    count: int = 0


@dataclass(eq=False, slots=True)
class _Subscription:
    exchange: str
    callback: Callable[[Envelope], None]


class MemoryBroker:
    """Queues and fanout exchanges shared by the transports of one process.

    Every method that reads or changes queues must be called with :attr:`cond` held; the
    transport holds it across a whole fetch, so waiting and claiming are one step.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self._seq = itertools.count(1)
        self._subscriptions: list[_Subscription] = []
        #: Direct exchange → the (routing key, queue) pairs bound to it.
        self._bindings: dict[str, set[tuple[str, str]]] = {}

    # -- messages (call with cond held) ---------------------------------------------------------

    def put(self, queue: str, priority: int, payload: bytes, visible_at: float, now: float) -> None:
        message = StoredMessage(next(self._seq), queue, priority, payload, visible_at)
        self._queue(queue).count += 1
        self._move(message, _Where.READY if visible_at <= now else _Where.DELAYED)
        self.cond.notify_all()

    def take(self, queue: str, limit: int, now: float, until: float) -> list[StoredMessage]:
        """Hand out up to ``limit`` visible messages of ``queue``, hidden until ``until``."""
        q = self._queues.get(queue)
        if q is None:
            return []
        self._promote(q, now)
        taken: list[StoredMessage] = []
        while q.ready and len(taken) < limit:
            _, _, version, message = heapq.heappop(q.ready)
            if version != message.version:
                continue
            message.deliveries += 1
            message.in_flight = True
            message.visible_at = until
            self._move(message, _Where.HELD)
            taken.append(message)
        return taken

    def next_visible(self, queue: str, now: float) -> float | None:
        """When the next message of ``queue`` becomes visible (``now`` if one is)."""
        q = self._queues.get(queue)
        if q is None:
            return None
        self._promote(q, now)
        _drop_stale_top(q.ready)
        if q.ready:
            return now
        _drop_stale_top(q.delayed)
        times = [message.visible_at for message in q.held.values()]
        if q.delayed:
            times.append(q.delayed[0][0])
        return min(times, default=None)

    def owns(self, message: StoredMessage, deliveries: int) -> bool:
        """Whether that delivery is still the consumer's (not settled, not handed out again)."""
        return (
            message.where is not _Where.GONE
            and message.in_flight
            and message.deliveries == deliveries
        )

    def remove(self, message: StoredMessage) -> None:
        self._queue(message.queue).count -= 1
        self._move(message, _Where.GONE)

    def requeue(self, message: StoredMessage, now: float) -> None:
        message.in_flight = False
        message.visible_at = now
        self._move(message, _Where.READY)
        self.cond.notify_all()

    def hide(self, message: StoredMessage, until: float) -> None:
        message.visible_at = max(message.visible_at, until)
        if message.where is not _Where.HELD:
            self._move(message, _Where.HELD)

    def waiting(self, queue: str, now: float) -> list[StoredMessage]:
        """Ready, delayed, and held past their deadline: what counting and purging see."""
        q = self._queues.get(queue)
        if q is None:
            return []
        self._promote(q, now)
        found = [m for _, _, version, m in q.ready if version == m.version]
        found.extend(m for _, _, version, m in q.delayed if version == m.version)
        return found

    def purge(self, queue: str, now: float) -> int:
        gone = self.waiting(queue, now)
        for message in gone:
            self.remove(message)
        q = self._queues.get(queue)
        if q is not None:  # every valid entry was just removed; drop the stale ones too
            q.ready.clear()
            q.delayed.clear()
        return len(gone)

    def delete(self, queue: str) -> None:
        """Drop the queue: every message (held ones too: their acks then do nothing) and
        every binding that routes to it."""
        q = self._queues.pop(queue, None)
        if q is not None:
            messages = [m for _, _, version, m in q.ready if version == m.version]
            messages.extend(m for _, _, version, m in q.delayed if version == m.version)
            messages.extend(q.held.values())
            for message in messages:
                message.version += 1
                message.where = _Where.GONE
                message.in_flight = False
        for exchange in list(self._bindings):
            pairs = {pair for pair in self._bindings[exchange] if pair[1] != queue}
            if pairs:
                self._bindings[exchange] = pairs
            else:
                del self._bindings[exchange]

    # -- direct exchanges (call with cond held) -------------------------------------------------

    def bind(self, exchange: str, routing_key: str, queue: str) -> None:
        self._bindings.setdefault(exchange, set()).add((routing_key, queue))

    def bound(self, exchange: str, routing_key: str) -> list[str]:
        """The queues bound to ``exchange`` with exactly ``routing_key``, in name order."""
        pairs = self._bindings.get(exchange, ())
        return sorted(queue for key, queue in pairs if key == routing_key)

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _promote(self, q: _Queue, now: float) -> None:
        while q.delayed and q.delayed[0][0] <= now:
            _, _, version, message = heapq.heappop(q.delayed)
            if version == message.version:
                self._move(message, _Where.READY)
        for message in [m for m in q.held.values() if m.visible_at <= now]:
            self._move(message, _Where.READY)  # still in flight: its consumer may yet ack it

    def _move(self, message: StoredMessage, where: _Where) -> None:
        q = self._queue(message.queue)
        if message.where is _Where.HELD:
            q.held.pop(message.seq, None)
        message.version += 1
        message.where = where
        if where is _Where.READY:
            heapq.heappush(q.ready, (-message.priority, message.seq, message.version, message))
        elif where is _Where.DELAYED:
            heapq.heappush(q.delayed, (message.visible_at, message.seq, message.version, message))
        elif where is _Where.HELD:
            q.held[message.seq] = message
        elif q.count == 0 and not q.held:
            del self._queues[message.queue]

    # -- fanout ---------------------------------------------------------------------------------

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        subscription = _Subscription(exchange, callback)
        with self.cond:
            self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            with self.cond:
                if subscription in self._subscriptions:
                    self._subscriptions.remove(subscription)

        return unsubscribe

    def broadcast(self, exchange: str, payload: bytes) -> None:
        """Call every subscriber of ``exchange`` now, in this thread, outside the lock."""
        with self.cond:
            targets = [s for s in self._subscriptions if s.exchange == exchange]
        for subscription in targets:
            try:
                subscription.callback(Envelope.decode(payload))
            except Exception:
                logger.exception("a subscriber of %r failed", exchange)


def _drop_stale_top(heap: list[tuple[_K, int, int, StoredMessage]]) -> None:
    while heap and heap[0][2] != heap[0][3].version:
        heapq.heappop(heap)


_lock = threading.Lock()
_brokers: dict[str, MemoryBroker] = {}


def broker_named(name: str) -> MemoryBroker:
    """The process's broker called ``name`` (``memory://name``), created on first use."""
    with _lock:
        found = _brokers.get(name)
        if found is None:
            found = _brokers[name] = MemoryBroker()
        return found
