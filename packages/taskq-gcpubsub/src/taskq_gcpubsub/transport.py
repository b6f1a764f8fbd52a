"""``gcpubsub://projects/<project-id>``: the Google Cloud Pub/Sub transport.

It keeps kombu's gcpubsub layout (kombu 5.4+; :mod:`taskq_gcpubsub.naming`): a queue is the
subscription ``kombu-<queue>`` on its exchange's topic, filtered on the ``routing_key``
attribute, and each message is kombu's JSON envelope as the message data. Celery and taskq
publish to and consume from the same subscriptions.

- **Fetch** pulls the queues in order (``return_immediately``, up to ``limit``), polling every
  ``polling_interval`` while nothing is ready; it first moves the queues' due delayed messages
  (:mod:`taskq_gcpubsub.delayed`). A fetched message's ack deadline is set to the
  ``visibility_timeout`` (at most 600 s, Pub/Sub's cap).
- **Settling**: ``ack`` acknowledges in batches; ``extend`` and ``reject(requeue=True)`` are
  ``modify_ack_deadline`` (to ``seconds``, resp. 0); ``reject(requeue=False)`` acknowledges;
  ``dead_letter`` publishes to ``<queue>.dlq`` with the reason in the envelope's headers and
  in the ``x-taskq-dead-letter-reason`` attribute, then acknowledges. ``close`` gives held
  messages back (deadline 0).
- **Delivery counts** are Pub/Sub's ``delivery_attempt``, which it keeps only for
  subscriptions with a dead-letter policy: taskq gives the queues it creates one (to
  ``<queue>.dlq`` after ``max_delivery_attempts``, 100) and adds it to existing ones.
- **No priorities** (Pub/Sub has none) and **no guaranteed order** (best effort).
- **Counting** (``queue_length``, ``purge``): Pub/Sub cannot count a backlog without the
  Cloud Monitoring API (minutes late, absent from the emulator). ``queue_length`` pulls what is
  ready and gives it straight back, which counts as a delivery attempt of each message; a
  delayed message a fetch has already looked at is hidden until its eta and not counted.
  ``purge`` acknowledges what is ready and seeks the delayed subscription to now.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.pubsub_v1.types import ReceivedMessage

from taskq.contracts import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    QueueSpec,
    TransportError,
    dead_letter_queue,
)
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.unacked import Unacked
from taskq_gcpubsub import naming
from taskq_gcpubsub.acking import acknowledge, pull_now, set_deadline
from taskq_gcpubsub.clients import Publisher, Subscriber, make_clients
from taskq_gcpubsub.delayed import ETA_ATTRIBUTE, DelayedMover
from taskq_gcpubsub.errors import NotFound, translated
from taskq_gcpubsub.fanout import FanoutSubscription
from taskq_gcpubsub.layout import Binding, Layout
from taskq_gcpubsub.options import TransportOptions
from taskq_protocol import Envelope, ProtocolError

__all__ = ["GcpubsubTransport", "PubsubHandle"]


@dataclass(frozen=True, slots=True)
class PubsubHandle:
    """What settles one delivery: its subscription and ack id."""

    queue: str
    subscription: str
    ack_id: str


class GcpubsubTransport:
    """A taskq :class:`~taskq.contracts.Transport` on Google Cloud Pub/Sub."""

    schemes: tuple[str, ...] = ("gcpubsub",)

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.project = naming.project_from_url(url)
        self.options = TransportOptions.from_mapping(options or {})
        self._lock = threading.Lock()
        self._clients: tuple[Publisher, Subscriber, Layout, DelayedMover] | None
        self._clients = None
        self._unacked: Unacked[PubsubHandle] = Unacked(PubsubHandle, "gcpubsub")
        self._fanouts: set[FanoutSubscription] = set()

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Build the clients (``PUBSUB_EMULATOR_HOST`` points them at an emulator)."""
        with self._lock:
            if self._clients is not None:
                return
            publisher, subscriber = make_clients()
            layout = Layout(publisher, subscriber, self.project, self.options)
            mover = DelayedMover(
                publisher,
                subscriber,
                layout,
                batch=self.options.ack_batch_size,
                publish_timeout=self.options.publish_timeout,
            )
            self._clients = (publisher, subscriber, layout, mover)

    def close(self) -> None:
        with self._lock:
            fanouts, self._fanouts = list(self._fanouts), set()
        for fanout in fanouts:
            fanout.stop()
        clients, self._clients = self._clients, None
        if clients is None:
            return
        _, subscriber, _, _ = clients
        try:
            self._give_back(subscriber, self._unacked.take_all(), 0)
        finally:
            subscriber.close()

    @property
    def _connected(self) -> tuple[Publisher, Subscriber, Layout, DelayedMover]:
        if self._clients is None:
            self.connect()
        assert self._clients is not None
        return self._clients

    # -- queues ----------------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        check_queue(spec.name)
        self._connected[2].declare(spec)

    def delete_queue(self, name: str) -> None:
        check_queue(name)
        self._unacked.take_where(lambda handle: handle.queue == name)
        self._connected[2].delete(name)

    # -- publishing ------------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        self.publish_many([(queue, envelope, eta)])

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        if not items:
            return
        publisher, _, layout, _ = self._connected
        now = time.time()
        futures: list[Any] = []
        for queue, envelope, eta in items:
            check_queue(queue)
            due = visible_at(eta, now)
            binding = layout.for_publish(queue)
            data = envelope.encode()
            with translated("publish"):
                if due > now:
                    topic = layout.ensure_delayed(binding)
                    futures.append(
                        publisher.publish(
                            topic,
                            data,
                            routing_key=binding.routing_key,
                            **{ETA_ATTRIBUTE: repr(due)},
                        )
                    )
                else:
                    futures.append(
                        publisher.publish(binding.topic, data, routing_key=binding.routing_key)
                    )
        self._wait(futures)

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        check_queue(exchange, "an exchange")
        publisher, subscriber, layout, _ = self._connected
        topic = layout.topic(exchange)
        with translated("list_topic_subscriptions"):
            try:
                subscriptions = list(publisher.list_topic_subscriptions(request={"topic": topic}))
            except NotFound:
                return False
        bound = False
        for path in subscriptions:
            with translated("get_subscription"):
                try:
                    found = subscriber.get_subscription(request={"subscription": path})
                except NotFound:
                    continue
            if naming.routing_key_of_filter(str(found.filter)) == routing_key:
                bound = True
                break
        if not bound:
            return False
        with translated("publish"):
            future = publisher.publish(topic, envelope.encode(), routing_key=routing_key)
        self._wait([future])
        return True

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        check_queue(exchange, "an exchange")
        publisher, _, layout, _ = self._connected
        topic = layout.ensure_topic(layout.topic(exchange))
        with translated("publish"):
            future = publisher.publish(topic, envelope.encode())
        self._wait([future])

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        check_queue(exchange, "an exchange")
        _, subscriber, layout, _ = self._connected
        topic = layout.ensure_topic(layout.topic(exchange))
        name = naming.fanout_subscription_name(exchange, self.options.queue_name_prefix)
        fanout = FanoutSubscription(
            subscriber,
            topic,
            naming.subscription_path(self.project, name),
            callback,
            polling_interval=self.options.polling_interval,
        )
        with self._lock:
            self._fanouts.add(fanout)

        def unsubscribe() -> None:
            with self._lock:
                self._fanouts.discard(fanout)
            fanout.stop()

        return unsubscribe

    # -- consuming -------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        limit = check_limit(limit)
        if not isinstance(timeout, (int, float)) or timeout < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"timeout must be a number >= 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        while True:
            got = self._fetch_ready(names, limit)
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                return got
            time.sleep(min(self.options.polling_interval, remaining))

    def _fetch_ready(self, names: list[str], limit: int) -> list[Delivery]:
        _, subscriber, layout, mover = self._connected
        got: list[Delivery] = []
        for queue in names:
            binding = layout.lookup(queue)
            if binding is None:
                continue
            mover.move_due(binding)
            received = pull_now(subscriber, binding.subscription, limit - len(got))
            got.extend(self._deliveries(binding, received))
            if len(got) >= limit:
                break
        self._unacked.add(got)
        return got

    def _deliveries(self, binding: Binding, received: list[ReceivedMessage]) -> list[Delivery]:
        if not received:
            return []
        _, subscriber, _, _ = self._connected
        batch = self.options.ack_batch_size
        if binding.ack_deadline != self.options.ack_deadline:
            ids = [item.ack_id for item in received]
            set_deadline(subscriber, binding.subscription, ids, self.options.ack_deadline, batch)
        deliveries: list[Delivery] = []
        dropped: list[str] = []
        for item in received:
            if not self._routed_here(binding, item):
                dropped.append(item.ack_id)
                continue
            try:
                envelope = Envelope.decode(item.message.data)
            except ProtocolError as exc:
                self._dead_letter_raw(binding.queue, item, f"unreadable message: {exc}")
                dropped.append(item.ack_id)
                continue
            deliveries.append(
                Delivery(
                    queue=binding.queue,
                    envelope=envelope,
                    tag=item.ack_id,
                    deliveries=max(1, int(item.delivery_attempt)),
                    handle=PubsubHandle(binding.queue, binding.subscription, item.ack_id),
                )
            )
        acknowledge(subscriber, binding.subscription, dropped, batch)
        return deliveries

    @staticmethod
    def _routed_here(binding: Binding, item: ReceivedMessage) -> bool:
        """Whether the subscription's filter lets the message in.

        Pub/Sub applies filters itself; the emulator does not, so taskq drops what a filter
        would have kept out rather than run another queue's messages.
        """
        if binding.filter_key is None:
            return True
        return item.message.attributes.get("routing_key", "") == binding.filter_key

    # -- settling --------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        _, subscriber, _, _ = self._connected
        by_subscription: defaultdict[str, list[str]] = defaultdict(list)
        for handle in handles:
            by_subscription[handle.subscription].append(handle.ack_id)
        for subscription, ack_ids in by_subscription.items():
            acknowledge(subscriber, subscription, ack_ids, self.options.ack_batch_size)
        self._unacked.settled(handles)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        if not requeue:
            self.ack([delivery])
            return
        handles = self._unacked.handles([delivery])
        self._give_back(self._connected[1], handles, 0)
        self._unacked.settled(handles)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        seconds = check_seconds(seconds)
        handles = self._unacked.handles(deliveries)
        self._give_back(self._connected[1], handles, math.ceil(seconds))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        [handle] = self._unacked.handles([delivery])
        publisher, _, layout, _ = self._connected
        dead = dead_lettered(delivery.envelope, reason)
        binding = layout.for_publish(dead_letter_queue(delivery.queue))
        with translated("publish"):
            future = publisher.publish(
                binding.topic,
                dead.encode(),
                routing_key=binding.routing_key,
                **{DEAD_LETTER_REASON_HEADER: reason},
            )
        self._wait([future])
        self.ack([delivery])
        del handle

    def _dead_letter_raw(self, queue: str, item: ReceivedMessage, reason: str) -> None:
        publisher, _, layout, _ = self._connected
        binding = layout.for_publish(dead_letter_queue(queue))
        with translated("publish"):
            future = publisher.publish(
                binding.topic,
                item.message.data,
                routing_key=binding.routing_key,
                **{DEAD_LETTER_REASON_HEADER: reason},
            )
        self._wait([future])

    def _give_back(
        self, subscriber: Subscriber, handles: Sequence[PubsubHandle], seconds: int
    ) -> None:
        by_subscription: defaultdict[str, list[str]] = defaultdict(list)
        for handle in handles:
            by_subscription[handle.subscription].append(handle.ack_id)
        for subscription, ack_ids in by_subscription.items():
            set_deadline(subscriber, subscription, ack_ids, seconds, self.options.ack_batch_size)

    # -- counting --------------------------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        check_queue(queue)
        _, subscriber, layout, _ = self._connected
        binding = layout.lookup(queue)
        if binding is None:
            return 0
        _, delayed = layout.delayed_paths(binding)
        counted = 0
        for subscription, check_route in ((binding.subscription, True), (delayed, False)):
            held = self._pull_all(subscriber, subscription)
            counted += sum(
                1 for item in held if not check_route or self._routed_here(binding, item)
            )
            ids = [item.ack_id for item in held]
            set_deadline(subscriber, subscription, ids, 0, self.options.ack_batch_size)
        return counted

    def purge(self, queue: str) -> int:
        check_queue(queue)
        _, subscriber, layout, _ = self._connected
        binding = layout.lookup(queue)
        if binding is None:
            return 0
        _, delayed = layout.delayed_paths(binding)
        purged = 0
        for subscription in (binding.subscription, delayed):
            held = self._pull_all(subscriber, subscription)
            purged += len(held)
            acknowledge(
                subscriber, subscription, [i.ack_id for i in held], self.options.ack_batch_size
            )
        # Delayed messages a fetch has hidden until their eta cannot be pulled: seeking the
        # delayed subscription to now drops them too (nobody holds delayed messages to run).
        with translated("seek"), contextlib.suppress(NotFound):
            subscriber.seek(request={"subscription": delayed, "time": _utc_now()})
        return purged

    @staticmethod
    def _pull_all(subscriber: Subscriber, subscription: str) -> list[ReceivedMessage]:
        """Every message ready on ``subscription``, leased to this call until given back."""
        held: list[ReceivedMessage] = []
        while True:
            batch = pull_now(subscriber, subscription, 1000)
            if not batch:
                return held
            held.extend(batch)

    # -- helpers ---------------------------------------------------------------------------

    def _wait(self, futures: Sequence[Any]) -> None:
        try:
            for future in futures:
                future.result(timeout=self.options.publish_timeout)
        except TransportError:
            raise
        except Exception as exc:  # the publisher's futures raise whatever gRPC raised
            raise TransportError(f"Pub/Sub publish failed: {exc}") from exc


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
