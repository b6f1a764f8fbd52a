"""The broker's memory: queues, delayed messages, held deliveries, bindings, broadcasts.

Plain Python with one lock, so the Pyro object in :mod:`taskq_pyro.broker` is a thin face on
it. Messages are kombu's envelope dicts (``body``, ``headers``, ``properties``...), kept as
they came, so kombu's clients and taskq's read each other's messages.

Within a queue the highest ``properties.priority`` is served first (kombu's own Pyro broker
is FIFO only; with equal priorities this is FIFO too), then publish order.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from taskq.contracts import dead_letter_queue

__all__ = ["BrokerState", "Record", "Fetched"]

Message = dict[str, Any]
#: What a fetch hands out: (queue, tag, message, deliveries so far including this one).
Fetched = tuple[str, str, Message, int]


def _priority(message: Message) -> int:
    properties = message.get("properties")
    if not isinstance(properties, dict):
        return 0
    value = cast("dict[str, Any]", properties).get("priority")
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, min(value, 255))
    return 0


@dataclass(slots=True)
class Record:
    seq: int
    priority: int
    message: Message
    deliveries: int = 0

    def key(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


@dataclass(slots=True)
class _Held:
    queue: str
    record: Record
    deadline: float
    consumer: str


@dataclass(slots=True)
class _Queue:
    ready: list[tuple[tuple[int, int], Record]] = field(
        default_factory=list[tuple[tuple[int, int], Record]]
    )
    delayed: list[tuple[float, int, Record]] = field(
        default_factory=list[tuple[float, int, Record]]
    )

    def push(self, record: Record) -> None:
        heapq.heappush(self.ready, (record.key(), record))


class BrokerState:
    def __init__(self, *, fanout_ttl: float = 60.0, fanout_keep: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queues: dict[str, _Queue] = {}
        self._held: dict[str, _Held] = {}
        self._bindings: dict[tuple[str, str], set[str]] = {}
        self._fanout: dict[str, deque[tuple[int, float, Message]]] = {}
        self._seq = itertools.count(1)
        self._fanout_ttl = fanout_ttl
        self._fanout_keep = fanout_keep

    # -- queues (kombu's interface) ------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue()
        return queue

    def new_queue(self, name: str) -> None:
        with self._lock:
            self._queue(name)

    def has_queue(self, name: str) -> bool:
        with self._lock:
            return name in self._queues

    def queue_names(self) -> list[str]:
        with self._lock:
            return list(self._queues)

    def put(self, name: str, message: Message, eta: float | None = None) -> None:
        with self._lock:
            self._put(name, message, eta)
            self._changed.notify_all()

    def _put(self, name: str, message: Message, eta: float | None) -> None:
        record = Record(next(self._seq), _priority(message), message)
        queue = self._queue(name)
        if eta is not None and eta > time.time():
            heapq.heappush(queue.delayed, (eta, record.seq, record))
        else:
            queue.push(record)

    def put_many(self, items: list[tuple[str, Message, float | None]]) -> None:
        with self._lock:
            for name, message, eta in items:
                self._put(name, message, eta)
            self._changed.notify_all()

    def get(self, name: str) -> Message | None:
        """kombu's get: take the next message for good (kombu acks in its own memory)."""
        with self._lock:
            self._restore_expired(time.time())
            queue = self._queues.get(name)
            if queue is None:
                return None
            self._move_due(queue, time.time())
            if not queue.ready:
                return None
            return heapq.heappop(queue.ready)[1].message

    def size(self, name: str) -> int:
        with self._lock:
            queue = self._queues.get(name)
            return 0 if queue is None else len(queue.ready) + len(queue.delayed)

    def purge(self, name: str) -> int:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                return 0
            count = len(queue.ready) + len(queue.delayed)
            queue.ready.clear()
            queue.delayed.clear()
            return count

    def delete(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)
            for tag in [t for t, held in self._held.items() if held.queue == name]:
                del self._held[tag]
            for key in list(self._bindings):
                self._bindings[key].discard(name)
                if not self._bindings[key]:
                    del self._bindings[key]

    # -- taskq's deliveries ----------------------------------------------------------------

    @staticmethod
    def _move_due(queue: _Queue, now: float) -> None:
        while queue.delayed and queue.delayed[0][0] <= now:
            queue.push(heapq.heappop(queue.delayed)[2])

    def _restore_expired(self, now: float) -> None:
        for tag in [t for t, held in self._held.items() if held.deadline <= now]:
            held = self._held.pop(tag)
            if held.queue in self._queues:
                self._queues[held.queue].push(held.record)

    def _next_event(self, names: list[str], now: float) -> float:
        """Seconds until a delayed message of ``names`` is due or a held one expires."""
        soonest = math.inf
        for name in names:
            queue = self._queues.get(name)
            if queue is not None and queue.delayed:
                soonest = min(soonest, queue.delayed[0][0])
        for held in self._held.values():
            soonest = min(soonest, held.deadline)
        return soonest - now

    def fetch(
        self, names: list[str], limit: int, timeout: float, visibility: float, consumer: str
    ) -> list[Fetched]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                now = time.time()
                self._restore_expired(now)
                got: list[Fetched] = []
                for name in names:
                    queue = self._queues.get(name)
                    if queue is None:
                        continue
                    self._move_due(queue, now)
                    while queue.ready and len(got) < limit:
                        record = heapq.heappop(queue.ready)[1]
                        record.deliveries += 1
                        tag = uuid.uuid4().hex
                        self._held[tag] = _Held(name, record, now + visibility, consumer)
                        got.append((name, tag, record.message, record.deliveries))
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                wait = min(remaining, max(self._next_event(names, now), 0.001))
                self._changed.wait(wait)

    def ack(self, tags: list[str]) -> None:
        with self._lock:
            for tag in tags:
                self._held.pop(tag, None)

    def requeue(self, tag: str) -> None:
        with self._lock:
            held = self._held.pop(tag, None)
            if held is not None and held.queue in self._queues:
                self._queues[held.queue].push(held.record)
                self._changed.notify_all()

    def dead_letter(self, tag: str, message: Message) -> bool:
        with self._lock:
            held = self._held.pop(tag, None)
            if held is None:
                return False
            self._put(dead_letter_queue(held.queue), message, None)
            self._changed.notify_all()
            return True

    def extend(self, tags: list[str], seconds: float) -> None:
        with self._lock:
            until = time.time() + seconds
            for tag in tags:
                held = self._held.get(tag)
                if held is not None:
                    held.deadline = max(held.deadline, until)

    def release(self, consumer: str) -> None:
        """Give back everything ``consumer`` holds (it is closing)."""
        with self._lock:
            for tag in [t for t, held in self._held.items() if held.consumer == consumer]:
                held = self._held.pop(tag)
                if held.queue in self._queues:
                    self._queues[held.queue].push(held.record)
            self._changed.notify_all()

    # -- direct exchanges ------------------------------------------------------------------

    def bind(self, exchange: str, routing_key: str, name: str) -> None:
        with self._lock:
            self._queue(name)
            self._bindings.setdefault((exchange, routing_key), set()).add(name)

    def send_direct(self, exchange: str, routing_key: str, message: Message) -> bool:
        with self._lock:
            bound = [
                q for q in self._bindings.get((exchange, routing_key), ()) if q in self._queues
            ]
            for name in bound:
                self._put(name, message, None)
            if bound:
                self._changed.notify_all()
            return bool(bound)

    # -- fanout ----------------------------------------------------------------------------

    def broadcast(self, exchange: str, message: Message) -> None:
        with self._lock:
            log = self._fanout.setdefault(exchange, deque())
            now = time.time()
            log.append((next(self._seq), now, message))
            while log and (len(log) > self._fanout_keep or log[0][1] < now - self._fanout_ttl):
                log.popleft()
            self._changed.notify_all()

    def fanout_position(self, exchange: str) -> int:
        """The sequence number a new subscriber starts after (nothing older is replayed)."""
        with self._lock:
            log = self._fanout.get(exchange)
            return log[-1][0] if log else next(self._seq)

    def fanout_read(self, exchange: str, after: int, timeout: float) -> list[tuple[int, Message]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                log = self._fanout.get(exchange, ())
                fresh = [(seq, message) for seq, _, message in log if seq > after]
                remaining = deadline - time.monotonic()
                if fresh or remaining <= 0:
                    return fresh
                self._changed.wait(remaining)
