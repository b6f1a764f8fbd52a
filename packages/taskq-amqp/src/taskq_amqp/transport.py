"""The RabbitMQ transport: ``amqp://``, ``amqps://`` and ``pyamqp://`` broker URLs.

Two connections per transport: a publishing one, used by the calling thread under a lock
with publisher confirms (:mod:`taskq_amqp.publisher`), and a consuming one owned by an I/O
thread (:mod:`taskq_amqp.consumer`). Delays go through Celery's native delayed delivery
(:mod:`taskq_amqp.delayed`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskq.contracts import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    QueueSpec,
    TransportError,
    dead_letter_queue,
)
from taskq_amqp import client, delayed, properties, topology, wire
from taskq_amqp.consumer import ConsumerLoop
from taskq_amqp.publisher import Outgoing, Publisher
from taskq_amqp.urls import SCHEMES, AmqpSettings, parse_settings
from taskq_protocol import Envelope

__all__ = ["AmqpTransport"]

logger = logging.getLogger(__name__)

#: How long a call waits for the I/O thread (settling, subscribing) before giving up.
SETUP_TIMEOUT = 30.0


def _check_queues(queues: Sequence[str]) -> list[str]:
    if isinstance(queues, str) or not queues:
        raise ValueError("queues must be a non-empty sequence of queue names")
    names: list[object] = list(dict.fromkeys(queues))
    if not all(isinstance(q, str) and q for q in names):
        raise ValueError(f"queue names must be non-empty strings: {queues!r}")
    return [str(q) for q in names]


def _encode(envelope: Envelope) -> bytes:
    """The content header properties of ``envelope``, encoded once, where a bad header
    value fails before anything is sent."""
    return wire.encode_properties(properties.to_wire(envelope))


class AmqpTransport:
    """A :class:`taskq.contracts.Transport` on RabbitMQ (AMQP 0-9-1, through py-amqp)."""

    schemes: tuple[str, ...] = SCHEMES

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.settings: AmqpSettings = parse_settings(url, options or {})
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._consumer: ConsumerLoop | None = None
        self._specs: dict[str, QueueSpec] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if self._publisher is not None:
                return
            publisher = Publisher(self.settings)
            publisher.run("connect", publisher.control)
            self._publisher = publisher
            self._consumer = ConsumerLoop(self.settings, self._specs.get)

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
        if publisher is not None:
            publisher.close()

    def _parts(self) -> tuple[Publisher, ConsumerLoop]:
        publisher, consumer = self._publisher, self._consumer
        if publisher is None or consumer is None:
            raise TransportError("the AMQP transport is not connected (call connect())")
        return publisher, consumer

    # -- declarations ----------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        publisher, _ = self._parts()
        self._specs[spec.name] = spec

        def declare() -> None:
            topology.declare_queue_spec(publisher.control, spec)
            publisher.known_queues.add(spec.name)
            if "x-expires" not in spec.arguments and spec.name not in publisher.delay_bound:
                # Delayed messages reach it whoever sent them: a Celery client routes them
                # by the queue's routing key, a taskq client by the queue's name.
                self._prepare_delays(publisher)
                keys = dict.fromkeys([spec.routing_key or spec.name, spec.name])
                topology.bind_delayed_destination(publisher.control, spec.name, keys)
                publisher.delay_bound.add(spec.name)

        publisher.run("declare_queue", declare)

    def delete_queue(self, name: str) -> None:
        publisher, _ = self._parts()
        publisher.flush()  # what was published before goes (or fails) first
        self._specs.pop(name, None)

        def delete() -> None:
            publisher.control().queue_delete(name)
            publisher.known_queues.discard(name)
            publisher.delay_bound.discard(name)

        publisher.run("delete_queue", delete)

    # -- publishing ------------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        """Send without waiting for this message's confirm (unless ``confirm_publish``):
        confirms are pipelined, and :meth:`flush` / :meth:`close` wait for them all."""
        self._publish([(queue, envelope, eta)], wait=self.settings.confirm_publish)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        """Send the batch and return once every message of it is confirmed."""
        self._publish(items, wait=True)

    def flush(self) -> None:
        """Wait until every message published so far is confirmed by RabbitMQ."""
        publisher, _ = self._parts()
        publisher.flush()

    @property
    def unconfirmed(self) -> int:
        """How many published messages RabbitMQ has not confirmed yet."""
        publisher = self._publisher
        return 0 if publisher is None else publisher.unconfirmed

    def _publish(self, items: Sequence[tuple[str, Envelope, float | None]], *, wait: bool) -> None:
        if not items:
            return
        publisher, _ = self._parts()
        now = time.time()
        batch: list[Outgoing] = []
        delayed_queues: set[str] = set()
        plain_queues: set[str] = set()
        for queue, envelope, eta in items:
            if not queue:
                raise ValueError("queue must be a non-empty name")
            encoded = _encode(envelope)
            seconds = delayed.delay_seconds(eta, now) if eta is not None else 0
            if seconds > 0:
                delayed_queues.add(queue)
                routing_key = delayed.delayed_routing_key(seconds, queue)
                batch.append(Outgoing(delayed.ENTRY_EXCHANGE, routing_key, encoded, envelope.body))
            else:
                exchange, routing_key = self._route(queue, envelope)
                if not exchange:
                    plain_queues.add(queue)
                batch.append(Outgoing(exchange, routing_key, encoded, envelope.body))

        def prepare() -> None:
            for queue in plain_queues | delayed_queues:
                if queue not in publisher.known_queues:
                    topology.ensure_queue(publisher.control, queue)
                    publisher.known_queues.add(queue)
            if delayed_queues:
                self._prepare_delays(publisher)
            for queue in delayed_queues - publisher.delay_bound:
                topology.bind_delayed_destination(publisher.control, queue, [queue])
                publisher.delay_bound.add(queue)

        prepared = (plain_queues | delayed_queues) <= publisher.known_queues and (
            not delayed_queues
            or (publisher.delay_levels_ready and delayed_queues <= publisher.delay_bound)
        )
        if not prepared:  # else no round trip to the lock and retry loop for nothing
            publisher.run("declare", prepare)
        publisher.publish(batch, wait=wait)

    def _prepare_delays(self, publisher: Publisher) -> None:
        if not publisher.delay_levels_ready:
            topology.declare_delayed_levels(publisher.control, self.settings.delayed_queue_type)
            publisher.delay_levels_ready = True

    def _route(self, queue: str, envelope: Envelope) -> tuple[str, str]:
        """Through the exchange the message names (Celery's routing), else straight to the
        queue through the default exchange."""
        info = envelope.properties.get("delivery_info")
        if isinstance(info, dict):
            exchange = info.get("exchange")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            routing_key = info.get("routing_key")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            spec = self._specs.get(queue)
            if (
                isinstance(exchange, str)
                and exchange
                and spec is not None
                and spec.exchange == exchange
            ):
                return exchange, routing_key if isinstance(routing_key, str) else queue
        return "", queue

    # -- consuming -------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = _check_queues(queues)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:  # pyright: ignore[reportUnnecessaryIsInstance] - callers may be untyped
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout!r}")
        _, consumer = self._parts()
        deadline = time.monotonic() + timeout
        if consumer.needs_setup(names):
            try:
                # Bounded by the fetch's own timeout (at least a second, for the round
                # trips): a broker that is away must not hold up a worker's loop.
                consumer.call(lambda: consumer.setup(names, limit), timeout=max(timeout, 1.0))
            except TransportError:
                # Connection lost or not back yet: an empty fetch; the worker asks again.
                consumer.wait_connected(max(deadline - time.monotonic(), 0.0))
                return []
            except TimeoutError:
                return []
        return consumer.take(names, limit, max(deadline - time.monotonic(), 0.0))

    def _settle(self, deliveries: Sequence[Delivery], action: str) -> None:
        if not deliveries:
            return
        if action != "requeue" and not self._published_confirmed():
            return  # left unsettled: RabbitMQ delivers it again, nothing is lost
        _, consumer = self._parts()
        # When the connection went with the deliveries, RabbitMQ requeued them already.
        with contextlib.suppress(TransportError):
            consumer.settle_later(list(deliveries), action)

    def _published_confirmed(self) -> bool:
        """Wait for confirms of what this transport published before a message leaves a queue.

        A worker publishes a retry, the next step of a chain or a postponed copy and then acks
        the message it came from; with pipelined confirms the ack must not overtake the
        publish, or a crash in between would lose the task. False when the confirms failed.
        """
        publisher = self._publisher
        if publisher is None or publisher.unconfirmed == 0:
            return True
        try:
            publisher.flush()
        except TransportError as exc:
            logger.warning("Not settling: what was published before is unconfirmed (%s)", exc)
            return False
        return True

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._settle(deliveries, "ack")

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        self._settle([delivery], "requeue" if requeue else "drop")

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish a copy with the reason to ``<queue>.dlq`` (confirmed), then ack the
        original: RabbitMQ's own dead-lettering cannot add a header."""
        _, consumer = self._parts()
        if not consumer.is_ours(delivery):
            return
        envelope = copy.deepcopy(delivery.envelope)
        envelope.headers[DEAD_LETTER_REASON_HEADER] = reason
        dlq = dead_letter_queue(delivery.queue)
        self.publish_many([(dlq, envelope, None)])  # confirmed before the original goes
        self.ack([delivery])

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Only meaningful with the ``visibility_timeout`` option: RabbitMQ itself keeps a
        delivery with its consumer until it is settled or the connection closes."""
        _, consumer = self._parts()
        consumer.extend(deliveries, seconds)

    # -- inspection ------------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        publisher, _ = self._parts()
        # Inspection runs on another channel, which could overtake pipelined publishes:
        # wait for their confirms so it sees everything published before it.
        publisher.flush()

        def purge() -> int:
            try:
                return int(publisher.control().queue_purge(queue) or 0)
            except client.NotFound:
                return 0

        return publisher.run("purge", purge)

    def queue_length(self, queue: str) -> int:
        publisher, _ = self._parts()
        publisher.flush()  # see purge
        return publisher.run(
            "queue_length", lambda: topology.queue_counts(publisher.control, queue)
        )

    # -- direct replies and broadcasts -----------------------------------------------------

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        publisher, _ = self._parts()
        outgoing = Outgoing(exchange, routing_key, _encode(envelope), envelope.body, mandatory=True)
        publisher.run(
            "declare", lambda: topology.declare_exchange(publisher.control, exchange, "direct")
        )
        publisher.publish([outgoing], wait=True)
        return not outgoing.returned

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        publisher, _ = self._parts()
        kind = topology.broadcast_exchange_type(exchange)
        info = envelope.properties.get("delivery_info")
        routing_key = ""
        if kind == "topic" and isinstance(info, dict):
            key = info.get("routing_key")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            routing_key = key if isinstance(key, str) else ""
        outgoing = Outgoing(exchange, routing_key, _encode(envelope), envelope.body)
        publisher.run(
            "declare", lambda: topology.declare_exchange(publisher.control, exchange, kind)
        )
        publisher.publish([outgoing], wait=self.settings.confirm_publish)

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        _, consumer = self._parts()
        key = consumer.call(lambda: consumer.subscribe(exchange, callback), timeout=SETUP_TIMEOUT)

        def unsubscribe() -> None:
            with contextlib.suppress(TransportError, TimeoutError):
                consumer.call(lambda: consumer.unsubscribe(key), timeout=SETUP_TIMEOUT)

        return unsubscribe
