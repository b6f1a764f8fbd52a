"""``zookeeper://``: the ZooKeeper transport, on kombu's queue layout (see :mod:`.layout`).

- **Publish**: a persistent sequential child ``entry-PPP-`` of the queue's znode, holding
  kombu's JSON envelope, exactly as kombu's transport writes it; Celery consumes it as its own.
- **Fetch**: list the queue's children (sorted: highest priority, then publish order), skip
  those claimed, and claim one in a single transaction: rewrite the entry with its delivery
  count (checked against the version just read) and create the ephemeral claim
  ``_taskq/taken/<queue>/<entry>``. Two consumers never both win. With nothing ready the fetch
  waits on ZooKeeper watches of the queues (and of their delayed areas).
- **Visibility**: a claim carries its deadline; once it passes, any fetch may take the message
  over (the claim is replaced in the same transaction, ``deliveries`` + 1). The claim is also
  ephemeral: when the holder's session ends (``close``, a crash, kill -9 plus the session
  timeout) it vanishes and the message is free at once.
- **Ack / reject / dead-letter**: transactions checked against the entry's version, so settling
  a delivery that another consumer has since claimed does nothing. ``ack`` deletes the entry,
  ``reject(requeue=True)`` deletes only the claim (the message keeps its place and its count),
  ``dead_letter`` moves it to ``<queue>.dlq`` with the reason header.
- **Delay**: ``eta`` messages wait in ``_taskq/delayed/<queue>``, named by due time; the fetch
  that finds one due moves it into the queue in one transaction (exactly once, never early).
- **Direct exchanges**: bindings are znodes, so every process sees them; ``send_direct``
  creates the message in each bound queue.
- **Fanout**: see :mod:`.fanout` (taskq only: kombu's ZooKeeper transport has none).

Mixing with kombu: kombu's consumer takes a message by reading and deleting the first child;
it knows nothing of taskq's claims, so a kombu consumer on a queue that taskq workers also
consume may take a message a taskq worker holds. Publishers of either kind mix freely.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    check_timeout,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq_protocol import Envelope, ProtocolError
from taskq_zookeeper.claims import ClaimHandle, claim_data, claim_deadline
from taskq_zookeeper.fanout import Subscription, broadcast_prefix, expired_broadcasts
from taskq_zookeeper.layout import Layout, delayed_due, delayed_prefix, entry_prefix
from taskq_zookeeper.options import ZookeeperOptions
from taskq_zookeeper.stored import Stored, read
from taskq_zookeeper.url import parse_url
from taskq_zookeeper.znodes import Transaction, Znodes

__all__ = ["ZookeeperTransport"]

logger = logging.getLogger("taskq_zookeeper.transport")

#: How often the broadcaster prunes old broadcasts of the exchanges it sends to.
_PRUNE_EVERY = 5.0


class ZookeeperTransport:
    """A taskq transport on ZooKeeper whose queues kombu's ZooKeeper transport shares."""

    schemes: tuple[str, ...] = ("zookeeper",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        parsed = parse_url(url)
        self.url = url
        self.options = ZookeeperOptions.read(options)
        self.visibility_timeout = self.options.visibility_timeout
        self.layout = Layout(parsed.root)
        self._hosts = parsed.hosts
        self._znodes: Znodes | None = None
        #: Set by close: a fetch still waiting in another thread must not reconnect.
        self._closed = False
        self._connect_lock = threading.Lock()
        #: Bumped by every watch that fires; a waiting fetch wakes when it changes.
        self._changes = threading.Condition()
        self._generation = 0
        #: Paths known to exist (a cache: a miss is handled where it matters).
        self._ensured: set[str] = set()
        #: Per queue: when to look for claims whose visibility timeout passed.
        self._next_takeover: dict[str, float] = {}
        self._takeover_every = min(max(self.visibility_timeout / 4, 0.05), 30.0)
        self._subscriptions: list[Subscription] = []
        self._pruned: dict[str, float] = {}

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        with self._connect_lock:
            if self._znodes is not None:
                return
            self._closed = False
            znodes = Znodes(self._hosts, session_timeout=self.options.session_timeout)
            try:
                znodes.start(self.options.connect_timeout)
            except TransportError:
                znodes.stop()
                raise
            self._znodes = znodes

    def close(self) -> None:
        """End the session: ZooKeeper deletes its claims, so held messages are free again."""
        with self._connect_lock:
            self._closed = True
            znodes, self._znodes = self._znodes, None
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.stop()
        if znodes is not None:
            znodes.stop()
        with self._changes:
            self._generation += 1
            self._changes.notify_all()

    @property
    def _z(self) -> Znodes:
        if self._znodes is None and not self._closed:
            self.connect()
        znodes = self._znodes
        if znodes is None:
            raise TransportError("the ZooKeeper transport is closed")
        return znodes

    def _ensure(self, path: str) -> None:
        if path not in self._ensured:
            self._z.ensure_path(path)
            self._ensured.add(path)

    def _on_change(self, _event: object) -> None:
        with self._changes:
            self._generation += 1
            self._changes.notify_all()

    # -- queues ----------------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        queue = check_queue(spec.name)
        self._ensure(self.layout.queue(queue))
        self._ensure(self.layout.taken(queue))
        if spec.exchange:
            # x-expires is not honoured: the client deletes its reply queue when done.
            self._z.ensure_path(self.layout.binding(spec.exchange, spec.routing_key, queue))
            self._z.ensure_path(self.layout.bound_entry(queue, spec.exchange, spec.routing_key))

    def delete_queue(self, name: str) -> None:
        queue = check_queue(name)
        layout, z = self.layout, self._z
        for bound in z.children(layout.bound(queue)):
            exchange, key = layout.parse_bound(bound)
            z.delete(layout.binding(exchange, key, queue))
        for path in (
            layout.bound(queue),
            layout.queue(queue),
            layout.delayed(queue),
            layout.taken(queue),
        ):
            z.delete(path, recursive=True)
            self._ensured.discard(path)

    # -- publishing ------------------------------------------------------------------------

    def _target(self, queue: str, envelope: Envelope, eta: float | None, now: float) -> str:
        """The path prefix a sequential create of this message uses."""
        due = visible_at(eta, now)
        if due > now:
            return f"{self.layout.delayed(queue)}/{delayed_prefix(due)}"
        return f"{self.layout.queue(queue)}/{entry_prefix(envelope.priority)}"

    def _encode(self, envelope: Envelope) -> bytes:
        data = envelope.encode()
        if len(data) > self.options.max_message_size:
            raise ValueError(
                f"a message of {len(data)} bytes (stored form) is larger than ZooKeeper takes: "
                f"max_message_size is {self.options.max_message_size} (the server's jute.maxbuffer)"
            )
        return data

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        check_queue(queue)
        path = self._target(queue, envelope, eta, time.time())
        self._z.create(path, self._encode(envelope), sequence=True, makepath=True)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        if not items:
            return
        now = time.time()
        planned = [
            (self._target(check_queue(q), envelope, eta, now), self._encode(envelope))
            for q, envelope, eta in items
        ]
        for parent in {path.rpartition("/")[0] for path, _ in planned}:
            self._ensure(parent)
        created = self._z.create_many(planned, sequence=True)
        for (path, data), done in zip(planned, created, strict=True):
            if not done:  # its queue was deleted meanwhile: recreate it, as publish does
                self._z.create(path, data, sequence=True, makepath=True)

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        layout = self.layout
        queues = [
            layout.queue_of_binding(name)
            for name in self._z.children(layout.binding_keys(exchange, routing_key))
        ]
        if not queues:
            return False
        data = self._encode(envelope)
        prefix = entry_prefix(envelope.priority)
        # No makepath: a queue deleted since its binding was read stays deleted.
        created = self._z.create_many(
            [(f"{layout.queue(q)}/{prefix}", data) for q in queues], sequence=True
        )
        return any(created)

    # -- fetching --------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        limit = check_limit(limit)
        deadline = time.monotonic() + check_timeout(timeout)
        while True:
            with self._changes:
                generation = self._generation
            got, wake_in = self._fetch_once(names, limit)
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                return got
            with self._changes:
                if self._generation == generation:
                    self._changes.wait(min(remaining, max(wake_in, 0.001)))

    def _fetch_once(self, queues: list[str], limit: int) -> tuple[list[Delivery], float]:
        """Claim up to ``limit`` messages; also how soon something may become ready."""
        got: list[Delivery] = []
        wake_in = math.inf
        for queue in queues:
            wake_in = min(wake_in, self._move_due(queue))
            entries = sorted(self._z.children(self.layout.queue(queue), watch=self._on_change))
            if not entries:
                continue
            # Watched too: a claim that ends (a reject, a dead session) frees a message.
            taken = set(self._z.children(self.layout.taken(queue), watch=self._on_change))
            free = [name for name in entries if name not in taken]
            if free:
                got.extend(self._claim_free(queue, free, limit - len(got)))
            held = [name for name in entries if name in taken]
            if held and len(got) < limit:
                now = time.monotonic()
                due = self._next_takeover.get(queue, 0.0)
                if now >= due:
                    self._next_takeover[queue] = now + self._takeover_every
                    got.extend(self._take_over_expired(queue, held, limit - len(got)))
                    due = now + self._takeover_every
                wake_in = min(wake_in, due - now)
            if len(got) >= limit:
                break
        return got, wake_in

    def _move_due(self, queue: str) -> float:
        """Move the queue's due delayed messages into it; seconds until the next is due."""
        area = self.layout.delayed(queue)
        names = sorted(self._z.children(area, watch=self._on_change))
        if not names:
            return math.inf
        now = time.time()
        due = [name for name in names if delayed_due(name) <= now]
        for name, found in zip(due, self._z.get_many([f"{area}/{n}" for n in due]), strict=True):
            if found is None:
                continue  # another consumer moved it
            data, version = found
            try:
                priority = read(data).envelope.priority
            except ProtocolError:
                priority = 0
            txn = self._z.transaction()
            txn.delete(f"{area}/{name}", version)
            txn.create(f"{self.layout.queue(queue)}/{entry_prefix(priority)}", data, sequence=True)
            if txn.commit() is None and not self._z.exists(self.layout.queue(queue)):
                # Its queue was deleted: the message goes where a publish would put it.
                self._ensure_queue_again(queue)
        waiting = [delayed_due(name) for name in names if delayed_due(name) > now]
        return min(waiting) - now if waiting else math.inf

    def _ensure_queue_again(self, queue: str) -> None:
        self._ensured.discard(self.layout.queue(queue))
        self._ensure(self.layout.queue(queue))

    def _claim_free(self, queue: str, free: list[str], want: int) -> list[Delivery]:
        got: list[Delivery] = []
        # Read a few more than wanted: other consumers may win some of them.
        batch = free[: max(want * 2, want + 4)]
        paths = [self.layout.entry(queue, name) for name in batch]
        for name, found in zip(batch, self._z.get_many(paths), strict=True):
            if len(got) >= want:
                break
            if found is None:
                continue
            delivery = self._claim(queue, name, found, replacing=None)
            if delivery is not None:
                got.append(delivery)
        return got

    def _take_over_expired(self, queue: str, held: list[str], want: int) -> list[Delivery]:
        """Claim messages whose holder's visibility timeout passed."""
        got: list[Delivery] = []
        claims = self._z.get_many([self.layout.claim(queue, name) for name in held])
        now = time.time()
        expired = [
            (name, claim[1])
            for name, claim in zip(held, claims, strict=True)
            if claim is not None and claim_deadline(claim[0]) <= now
        ]
        for name, claim_version in expired:
            if len(got) >= want:
                break
            found = self._z.get(self.layout.entry(queue, name))
            if found is None:
                continue
            delivery = self._claim(queue, name, found, replacing=claim_version)
            if delivery is not None:
                got.append(delivery)
        return got

    def _claim(
        self, queue: str, name: str, found: tuple[bytes, int], *, replacing: int | None
    ) -> Delivery | None:
        """Claim one message in one transaction; None when another consumer was first."""
        data, version = found
        entry = self.layout.entry(queue, name)
        try:
            stored = read(data)
        except ProtocolError as exc:
            self._quarantine(queue, entry, data, version, str(exc))
            return None
        claim = self.layout.claim(queue, name)
        deadline = time.time() + self.visibility_timeout
        for attempt in range(2):
            txn = self._z.transaction()
            if replacing is not None:
                txn.delete(claim, replacing)
            txn.set_data(entry, stored.claimed(), version)
            txn.create(claim, claim_data(deadline), ephemeral=True)
            if txn.commit() is not None:
                return self._delivery(queue, name, stored, version + 1, deadline)
            if attempt or self._z.exists(self.layout.taken(queue)):
                return None
            # The claims' parent is missing (the queue was declared by kombu, or deleted
            # and published to again): make it and try once more.
            self._ensured.discard(self.layout.taken(queue))
            self._ensure(self.layout.taken(queue))
        return None

    def _delivery(
        self, queue: str, name: str, stored: Stored, version: int, deadline: float
    ) -> Delivery:
        handle = ClaimHandle(
            entry=self.layout.entry(queue, name),
            claim=self.layout.claim(queue, name),
            version=version,
            deadline=deadline,
        )
        return Delivery(
            queue=queue,
            envelope=stored.envelope,
            tag=f"{queue}/{name}@{version}",
            deliveries=stored.deliveries + 1,
            handle=handle,
        )

    def _quarantine(self, queue: str, entry: str, data: bytes, version: int, why: str) -> None:
        """Move bytes that are no envelope to the dead-letter queue, as they are."""
        logger.warning(
            "moving an undecodable message of %s to its dead-letter queue: %s", queue, why
        )
        dlq = dead_letter_queue(queue)
        self._ensure(self.layout.queue(dlq))
        txn = self._z.transaction()
        txn.delete(entry, version)
        txn.create(f"{self.layout.queue(dlq)}/{entry_prefix(0)}", data, sequence=True)
        txn.commit()

    # -- settling --------------------------------------------------------------------------

    @staticmethod
    def _handle(delivery: Delivery) -> ClaimHandle:
        handle = delivery.handle
        if not isinstance(handle, ClaimHandle):
            raise ValueError(f"not a delivery of the ZooKeeper transport: {delivery.tag!r}")
        return handle

    def _settle(
        self, handle: ClaimHandle, add: Callable[[Transaction], None] | None = None
    ) -> bool:
        """Delete the entry (checked against this delivery's version) and its claim, plus
        whatever ``add`` puts in the same transaction. False: it went to someone else."""
        for with_claim in (True, False):
            txn = self._z.transaction()
            txn.delete(handle.entry, handle.version)
            if with_claim:
                txn.delete(handle.claim)
            if add is not None:
                add(txn)
            if txn.commit() is not None:
                return True
        return False

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._settle(self._handle(delivery))

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        handle = self._handle(delivery)
        if not requeue:
            self._settle(handle)
            return
        txn = self._z.transaction()
        txn.check(handle.entry, handle.version)
        txn.delete(handle.claim)
        txn.commit()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        handle = self._handle(delivery)
        dead = dead_lettered(delivery.envelope, reason)
        dlq = self.layout.queue(dead_letter_queue(delivery.queue))
        self._ensure(dlq)
        target = f"{dlq}/{entry_prefix(dead.priority)}"
        self._settle(handle, lambda txn: txn.create(target, dead.encode(), sequence=True))

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        seconds = check_seconds(seconds)
        for delivery in deliveries:
            handle = self._handle(delivery)
            deadline = max(handle.deadline, time.time() + seconds)
            txn = self._z.transaction()
            txn.check(handle.entry, handle.version)
            txn.set_data(handle.claim, claim_data(deadline))
            if txn.commit() is not None:
                handle.deadline = deadline

    # -- counting --------------------------------------------------------------------------

    def _waiting(self, queue: str) -> tuple[list[str], list[str]]:
        """Paths of the queue's unclaimed messages and of its delayed ones."""
        layout = self.layout
        entries = self._z.children(layout.queue(queue))
        taken = set(self._z.children(layout.taken(queue))) if entries else set[str]()
        delayed = self._z.children(layout.delayed(queue))
        return (
            [layout.entry(queue, name) for name in entries if name not in taken],
            [f"{layout.delayed(queue)}/{name}" for name in delayed],
        )

    def queue_length(self, queue: str) -> int:
        ready, delayed = self._waiting(check_queue(queue))
        return len(ready) + len(delayed)

    def purge(self, queue: str) -> int:
        ready, delayed = self._waiting(check_queue(queue))
        return self._z.delete_many(ready + delayed)

    # -- fanout ----------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        path = self.layout.fanout(exchange)
        now = time.time()
        self._z.create(
            f"{path}/{broadcast_prefix(now)}", self._encode(envelope), sequence=True, makepath=True
        )
        if time.monotonic() - self._pruned.get(exchange, -math.inf) >= _PRUNE_EVERY:
            self._pruned[exchange] = time.monotonic()
            old = expired_broadcasts(self._z.children(path), now - self.options.fanout_ttl)
            self._z.delete_many([f"{path}/{name}" for name in old])

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        subscription = Subscription(self._z, self.layout.fanout(exchange), callback)
        subscription.start()
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            subscription.stop()
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

        return unsubscribe
