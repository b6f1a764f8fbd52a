"""``consul://``: queues in Consul's KV store, where kombu's Consul transport keeps them.

Layout in :mod:`taskq_consul.layout`; per-delivery state in :mod:`taskq_consul.held`.

- **Publish**: one create-only PUT (``?cas=0``) of kombu's JSON envelope to
  ``<prefix>/<queue>/msg/<stamp>_<uuid>``, as kombu writes it; with an ETA, to
  ``_taskq/delayed/<queue>/<due>_<uuid>`` instead.
- **Fetch**: list the queue's keys, oldest first; for each, read it and *claim* it with a
  check-and-set PUT that stamps its flags (only one consumer's CAS succeeds, and a message
  deleted meanwhile fails it), write the held copy locked with this transport's session, then
  delete the ready key. Due delayed messages are claimed the same way and moved to their
  queue under their due stamp. With nothing ready, a blocking query waits for a change under
  the queue's keys (all queues' when fetching several), no longer than the next due time.
- **Visibility**: the held copy carries a deadline; ``extend`` moves it. A consumer that finds a
  held copy past its deadline, or no longer locked (its session expired: the consumer died),
  gives it back to its place in the queue, marked redelivered, with its delivery count.
- **Ack** deletes the held copy; **reject** and **dead_letter** first take it with a CAS, so a
  delivery that already went back to the queue is left alone.
- **Counting**: ``queue_length`` and ``purge`` cover the ready and delayed keys.
- **Direct exchanges**: bindings are keys; ``send_direct`` publishes to each bound queue.
  ``x-expires`` is not honoured (Consul has no expiring keys); the client deletes the queue.
- **Broadcast**: :mod:`taskq_consul.fanout`.

Priorities are not supported (kombu's Consul transport has none): messages are served in
publish order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.unacked import Unacked
from taskq_consul.client import ConsulClient, Entry
from taskq_consul.fanout import Fanout
from taskq_consul.held import (
    CLAIM_STALE,
    HeldMessage,
    mark_redelivered,
    pack_flags,
    unpack_flags,
)
from taskq_consul.layout import KeyLayout, new_suffix, ready_order, suffix_due
from taskq_consul.options import ConsulOptions
from taskq_consul.session import SessionKeeper
from taskq_protocol import Envelope, ProtocolError

__all__ = ["ConsulTransport", "ConsulHandle"]

logger = logging.getLogger("taskq_consul.transport")

#: The longest one blocking query waits, so a closing transport is not held up for long.
_MAX_BLOCK = 5.0


@dataclass(frozen=True, slots=True)
class ConsulHandle:
    """Where a delivery's held copy is, and what it held when fetched."""

    key: str
    held: HeldMessage
    session: str


class ConsulTransport:
    """The Consul KV transport; one instance serves every thread of a process."""

    schemes: tuple[str, ...] = ("consul", "consul+https")

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = ConsulOptions.read(url, options)
        self.layout = KeyLayout(self.options.prefix)
        self._client = ConsulClient(
            self.options.host,
            self.options.port,
            scheme=self.options.scheme,
            token=self.options.token,
        )
        self._session = SessionKeeper(self._client, self.options.session_ttl)
        self._unacked: Unacked[ConsulHandle] = Unacked(ConsulHandle, "Consul")
        self._fanout = Fanout(self._client, self.layout, self.options.session_ttl)
        self._reaped_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._connected = False

    # -- lifecycle -----------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if self._connected:
                return
            self._client.keys(self.layout.all_queues(), separator="/")  # reachable?
            self._connected = True

    def close(self) -> None:
        self._fanout.close()
        for handle in self._unacked.take_all():
            try:
                self._give_back(handle, same_place=True)
            except TransportError as exc:
                logger.warning("could not give back %s on close: %s", handle.key, exc)
        self._session.close()
        with self._lock:
            self._connected = False

    # -- queues --------------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        queue = check_queue(spec.name)
        self._client.put(self.layout.queue_marker(queue), None, cas=0)
        if spec.exchange:
            key = self.layout.binding(spec.exchange, spec.routing_key, queue)
            self._client.put(key, queue.encode("utf-8"))

    def delete_queue(self, name: str) -> None:
        queue = check_queue(name)
        self._client.delete(self.layout.ready_prefix(queue), recurse=True)
        self._client.delete(self.layout.delayed_prefix(queue), recurse=True)
        self._client.delete(self.layout.unacked_prefix(queue), recurse=True)
        self._client.delete(self.layout.queue_marker(queue))
        _, bindings = self._client.keys(self.layout.bindings_prefix())
        for key in bindings:
            if self.layout.last_name(key) == queue:
                self._client.delete(key)

    def queue_length(self, queue: str) -> int:
        check_queue(queue)
        _, ready = self._client.keys(self.layout.ready_prefix(queue))
        _, delayed = self._client.keys(self.layout.delayed_prefix(queue))
        return len(ready) + len(delayed)

    def purge(self, queue: str) -> int:
        check_queue(queue)
        count = 0
        for prefix in (self.layout.ready_prefix(queue), self.layout.delayed_prefix(queue)):
            _, names = self._client.keys(prefix)
            count += len(names)
            if names:
                self._client.delete(prefix, recurse=True)
        return count

    # -- publishing ----------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        check_queue(queue)
        now = time.time()
        due = visible_at(eta, now)
        self._put_new(queue, envelope.encode(), due if due > now else None)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        for queue, envelope, eta in items:
            self.publish(queue, envelope, eta=eta)

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        _, bindings = self._client.keys(self.layout.bindings_prefix(exchange, routing_key))
        queues = [self.layout.last_name(key) for key in bindings]
        for queue in queues:
            self.publish(queue, envelope)
        return bool(queues)

    def _put_new(
        self, queue: str, message: bytes, due: float | None, *, deliveries: int = 0
    ) -> None:
        if due is None:
            key = self.layout.ready(queue, new_suffix())
        else:
            key = self.layout.delayed_prefix(queue) + new_suffix(due)
        if not self._client.put(key, message, cas=0, flags=pack_flags(0, deliveries)):
            raise TransportError(f"Consul refused to create {key!r}")

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        wanted = check_limit(limit)
        deadline = time.monotonic() + max(float(timeout), 0.0)
        watched = self.layout.ready_prefix(names[0]) if len(names) == 1 else None
        watch_prefix = watched or self.layout.all_queues()
        separator = None if watched else "/"
        index: int | None = None
        while True:
            got, next_due = self._fetch_once(names, wanted)
            if got:
                self._unacked.add(got)
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if index is None:
                index, _ = self._client.keys(watch_prefix, separator=separator)
                continue
            wait = min(remaining, _MAX_BLOCK, self._reap_interval())
            if next_due is not None:
                wait = min(wait, max(next_due - time.time(), 0.0))
            if wait <= 0.001:
                continue
            index, _ = self._client.keys(watch_prefix, separator=separator, index=index, wait=wait)

    def _fetch_once(self, queues: list[str], limit: int) -> tuple[list[Delivery], float | None]:
        """One pass over the queues; what it claimed and when the next delayed one is due."""
        got: list[Delivery] = []
        next_due: float | None = None
        for queue in queues:
            self._maybe_reap(queue)
            claimed, due = self._claim_due(queue, limit - len(got))
            got.extend(claimed)
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
            if len(got) < limit:
                got.extend(self._claim_ready(queue, limit - len(got)))
            if len(got) >= limit:
                break
        return got, next_due

    def _claim_ready(self, queue: str, limit: int) -> list[Delivery]:
        _, names = self._client.keys(self.layout.ready_prefix(queue))
        got: list[Delivery] = []
        for name in sorted(names, key=ready_order):
            if len(got) >= limit:
                break
            entry = self._client.get(name)
            if entry is None:
                continue
            delivery = self._claim(queue, entry, name.rsplit("/", 1)[-1])
            if delivery is not None:
                got.append(delivery)
        return got

    def _claim_due(self, queue: str, limit: int) -> tuple[list[Delivery], float | None]:
        """Claim due delayed messages straight from their keys; and the next due time.

        A due message is never moved to the ready keys first: claiming it where it is saves
        the round trips, and a give-back puts it in the queue under its due stamp.
        """
        _, names = self._client.keys(self.layout.delayed_prefix(queue))
        now = time.time()
        got: list[Delivery] = []
        for name in sorted(names):
            suffix = name.rsplit("/", 1)[-1]
            due = suffix_due(suffix)
            if due > now:
                return got, due
            if len(got) >= limit:
                break
            entry = self._client.get(name)
            if entry is not None:
                delivery = self._claim(queue, entry, suffix)
                if delivery is not None:
                    got.append(delivery)
        return got, None

    def _claim(self, queue: str, entry: Entry, suffix: str) -> Delivery | None:
        """Move one ready (or due) message into this transport's hands, or None if taken."""
        now = time.time()
        claimed_at, seen = unpack_flags(entry.flags)
        if claimed_at and now - claimed_at < CLAIM_STALE:
            return None
        # The CAS is the claim: one consumer wins, and a message deleted meanwhile fails it.
        if not self._client.put(
            entry.key, entry.value, cas=entry.modify_index, flags=pack_flags(now, seen)
        ):
            return None
        held = HeldMessage(
            queue=queue,
            suffix=suffix,
            deliveries=seen + 1,
            deadline=now + self.options.visibility_timeout,
            message=entry.value,
        )
        session = self._session.current()
        key = self.layout.unacked(queue, suffix)
        if not self._client.put(key, held.encode(), acquire=session):
            # The session died under us: leave the claim stamp to go stale, start afresh.
            self._session.lost(session)
            raise TransportError("the Consul session expired while claiming a message")
        self._client.delete(entry.key)
        try:
            envelope = Envelope.decode(entry.value)
        except ProtocolError as exc:
            self._bury(queue, entry.value, key, f"undecodable message: {exc}")
            return None
        return Delivery(
            queue=queue,
            envelope=envelope,
            tag=key,
            deliveries=held.deliveries,
            handle=ConsulHandle(key=key, held=held, session=session),
        )

    def _bury(self, queue: str, message: bytes, held_key: str, reason: str) -> None:
        """Park a message nobody can read on the dead-letter queue, as it is."""
        logger.error("dead-lettering a message from %s: %s", queue, reason)
        self._put_new(dead_letter_queue(queue), message, None)
        self._client.delete(held_key)

    # -- visibility ----------------------------------------------------------------------

    def _reap_interval(self) -> float:
        return min(max(self.options.visibility_timeout / 4, 0.05), 5.0)

    def _maybe_reap(self, queue: str) -> None:
        now = time.monotonic()
        if now - self._reaped_at.get(queue, 0.0) < self._reap_interval():
            return
        self._reaped_at[queue] = now
        self._reap(queue)

    def _reap(self, queue: str) -> None:
        """Give back held copies whose deadline passed or whose consumer's session died."""
        now = time.time()
        for entry in self._client.entries(self.layout.unacked_prefix(queue)):
            try:
                held = HeldMessage.decode(entry.value)
            except (ValueError, KeyError, TypeError):
                logger.error("ignoring an unreadable held delivery at %s", entry.key)
                continue
            if held.is_reserved(now) or (entry.session and held.deadline > now):
                continue
            taken = self._take(entry, held)
            if taken is not None:
                self._restore(taken, same_place=True)
                self._client.delete(entry.key)

    def _take(self, entry: Entry, held: HeldMessage) -> HeldMessage | None:
        """Reserve a held copy for settling: a CAS, so two consumers never both act on it."""
        taken = held.with_(taken_at=time.time())
        if self._client.put(entry.key, taken.encode(), cas=entry.modify_index):
            return taken
        return None

    def _take_mine(self, handle: ConsulHandle) -> HeldMessage | None:
        entry = self._client.get(handle.key)
        if entry is None or entry.session != handle.session:
            return None  # gone back to the queue (and maybe to another consumer)
        try:
            held = HeldMessage.decode(entry.value)
        except (ValueError, KeyError, TypeError):
            return None
        if held.is_reserved(time.time()):
            return None
        return self._take(entry, held)

    def _restore(self, held: HeldMessage, *, same_place: bool) -> None:
        suffix = held.suffix if same_place else new_suffix()
        key = self.layout.ready(held.queue, suffix)
        message = mark_redelivered(held.message)
        # Create-only: if the ready key still exists (a claim that died half-way), it stays.
        self._client.put(key, message, cas=0, flags=pack_flags(0, held.deliveries))

    def _give_back(self, handle: ConsulHandle, *, same_place: bool) -> None:
        held = self._take_mine(handle)
        if held is not None:
            self._restore(held, same_place=same_place)
            self._client.delete(handle.key)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        wanted = check_seconds(seconds)
        for handle in self._unacked.handles(deliveries):
            entry = self._client.get(handle.key)
            if entry is None or entry.session != handle.session:
                continue
            held = HeldMessage.decode(entry.value)
            if held.is_reserved(time.time()):
                continue
            deadline = max(held.deadline, time.time() + wanted)
            self._client.put(
                handle.key, held.with_(deadline=deadline).encode(), cas=entry.modify_index
            )

    # -- settling ------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        for handle in handles:
            self._client.delete(handle.key)
        self._unacked.settled(handles)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        [handle] = self._unacked.handles([delivery])
        if requeue:
            # To the tail, as kombu requeues, so a message that keeps failing starves no one.
            self._give_back(handle, same_place=False)
        else:
            self._client.delete(handle.key)
        self._unacked.settled([handle])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        [handle] = self._unacked.handles([delivery])
        dead = dead_lettered(delivery.envelope, reason)
        held = self._take_mine(handle)
        if held is not None:
            self._put_new(dead_letter_queue(delivery.queue), dead.encode(), None)
            self._client.delete(handle.key)
        self._unacked.settled([handle])

    # -- broadcast -----------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        self._fanout.broadcast(check_queue(exchange, "an exchange"), envelope)

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        return self._fanout.subscribe(check_queue(exchange, "an exchange"), callback)
