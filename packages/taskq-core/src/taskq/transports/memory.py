"""``memory://``: a broker inside one process, for tests, with the SQLite transport's semantics.

``memory://`` (or ``memory``) is the process's default broker; ``memory://name`` is a separate
one. Every transport built with the same name shares the same queues, so a client and a worker
in one test talk to each other, and a test that wants a clean broker picks a fresh name.

Semantics are those of :mod:`taskq.transports.sqlite` (priority: higher first, then publish
order; delays, visibility timeout, requeue in place, counting waiting messages only), so code
tested here behaves the same on the default broker. Messages are stored as their JSON
encoding, like SQLite stores them: a delivery is a fresh copy, and an envelope that cannot be
encoded fails at publish, not in the worker. ``visibility_timeout`` (3600 s) is the only option.
Broadcast callbacks run at once, in the broadcasting thread. Direct-exchange bindings
(``declare_queue`` with an exchange, read by ``send_direct``) live in the broker too.
"""

from __future__ import annotations

import threading
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
from taskq.transports.memory_broker import MemoryBroker, StoredMessage, broker_named
from taskq.transports.options import BROKER_OPTIONS, seconds_option
from taskq.transports.unacked import Unacked
from taskq_protocol import Envelope

__all__ = ["MemoryTransport", "MessageHandle", "memory_name"]


def memory_name(url: str, error: type[Exception]) -> str:
    """The broker name in ``memory://name`` (``""`` for ``memory://`` and bare ``memory``)."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "memory" or (not sep and rest):
        raise error(f"{url!r} is not a memory:// URL")
    return rest


class MessageHandle(NamedTuple):
    """One delivery of one stored message (a stale handle no longer owns the message)."""

    message: StoredMessage
    deliveries: int


class MemoryTransport:
    """A thread-safe in-process broker; see the module docstring."""

    schemes: tuple[str, ...] = ("memory",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.name = memory_name(url, TransportError)
        self.visibility_timeout = seconds_option(
            options, "visibility_timeout", 3600.0, BROKER_OPTIONS
        )
        self._broker: MemoryBroker = broker_named(self.name)
        self._lock = threading.Lock()
        self._unacked = Unacked(MessageHandle, "memory")
        self._unsubscribers: list[Callable[[], None]] = []

    def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        unacked = self._unacked.take_all()
        with self._lock:
            unsubscribers, self._unsubscribers = self._unsubscribers, []
        for unsubscribe in unsubscribers:
            unsubscribe()
        now = time.time()
        with self._broker.cond:
            for message, deliveries in unacked:
                if self._broker.owns(message, deliveries):
                    self._broker.requeue(message, now)

    def declare_queue(self, spec: QueueSpec) -> None:
        """Queues appear when used; only a binding to a named exchange is recorded. Any
        priority is honoured; ``x-expires`` is not (the queue lives until deleted)."""
        name = check_queue(spec.name)
        if spec.exchange:
            with self._broker.cond:
                self._broker.bind(spec.exchange, spec.routing_key, name)

    def delete_queue(self, name: str) -> None:
        with self._broker.cond:
            self._broker.delete(check_queue(name))

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        self.publish_many([(queue, envelope, eta)])

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        now = time.time()
        rows = [
            (check_queue(queue), envelope.priority, envelope.encode(), visible_at(eta, now))
            for queue, envelope, eta in items
        ]
        with self._broker.cond:
            for queue, priority, payload, visible in rows:
                self._broker.put(queue, priority, payload, visible, now)

    # -- consuming ------------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        check_limit(limit)
        deadline = time.monotonic() + max(timeout, 0.0)
        broker = self._broker
        taken: list[tuple[str, StoredMessage]] = []
        with broker.cond:
            while True:
                now = time.time()
                until = now + self.visibility_timeout
                for queue in names:
                    wanted = limit - len(taken)
                    if wanted <= 0:
                        break
                    taken.extend((queue, m) for m in broker.take(queue, wanted, now, until))
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    break
                upcoming = [broker.next_visible(queue, now) for queue in names]
                soonest = min((t for t in upcoming if t is not None), default=None)
                broker.cond.wait(remaining if soonest is None else min(remaining, soonest - now))
        deliveries = [
            Delivery(
                queue=queue,
                envelope=Envelope.decode(message.payload),
                tag=f"{message.seq}.{message.deliveries}",
                deliveries=message.deliveries,
                handle=MessageHandle(message, message.deliveries),
            )
            for queue, message in taken
        ]
        self._unacked.add(deliveries)
        return deliveries

    # -- settling -------------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        with self._broker.cond:
            for message, count in handles:
                if self._broker.owns(message, count):
                    self._broker.remove(message)
        self._unacked.settled(handles)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        handles = self._unacked.handles([delivery])
        message, count = handles[0]
        with self._broker.cond:
            if self._broker.owns(message, count):
                if requeue:
                    self._broker.requeue(message, time.time())
                else:
                    self._broker.remove(message)
        self._unacked.settled(handles)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        handles = self._unacked.handles([delivery])
        message, count = handles[0]
        envelope = dead_lettered(delivery.envelope, reason)
        payload = envelope.encode()
        now = time.time()
        with self._broker.cond:
            if self._broker.owns(message, count):
                self._broker.remove(message)
                self._broker.put(
                    dead_letter_queue(delivery.queue), envelope.priority, payload, now, now
                )
        self._unacked.settled(handles)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Hide the deliveries until ``seconds`` from now at least; never shortens a timeout."""
        until = time.time() + check_seconds(seconds)
        handles = self._unacked.handles(deliveries)
        with self._broker.cond:
            for message, count in handles:
                if self._broker.owns(message, count):
                    self._broker.hide(message, until)

    # -- queues ---------------------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        with self._broker.cond:
            return self._broker.purge(check_queue(queue), time.time())

    def queue_length(self, queue: str) -> int:
        with self._broker.cond:
            return len(self._broker.waiting(check_queue(queue), time.time()))

    # -- direct exchanges -----------------------------------------------------------------------

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        check_queue(exchange, "an exchange")
        payload = envelope.encode()
        now = time.time()
        with self._broker.cond:
            queues = self._broker.bound(exchange, routing_key)
            for queue in queues:
                self._broker.put(queue, envelope.priority, payload, now, now)
        return bool(queues)

    # -- fanout ---------------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        self._broker.broadcast(check_queue(exchange, "an exchange"), envelope.encode())

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        unsubscribe = self._broker.subscribe(check_queue(exchange, "an exchange"), callback)
        with self._lock:
            self._unsubscribers.append(unsubscribe)
        return unsubscribe

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url}>"
