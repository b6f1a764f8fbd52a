"""The consuming connection and the thread that owns it.

py-amqp is not thread-safe, and a consuming connection must be read all the time: for
heartbeats, and so a worker whose every slot is busy does not look dead to RabbitMQ
(which would hand its unacked messages to someone else). So one I/O thread per transport
owns it: it waits on the socket and on a wake-up pipe, runs the commands other threads
queue (consume, settle, subscribe), buffers deliveries, sends heartbeats, gives back
deliveries whose visibility timeout passed, and reconnects with backoff when the
connection drops (consumers are set up again on the next fetch; subscriptions at once).

Fetch limits map onto ``basic.qos``: a queue's consumer is started with a prefetch equal
to the ``limit`` of the fetch that starts it. RabbitMQ fixes a consumer's prefetch when it
starts, so when a fetch finds a consumer whose window is full (everything it received is
still held by the caller), the consumer is cancelled and started again with the new
limit. A worker under load, whose limit is its free slots and which acknowledges in
batches, meets this every few fetches (641-761 restarts in 20,000 tasks). A channel-wide
``basic.qos``, which RabbitMQ applies in place, was tried and measured: no restarts, but no
less worker CPU, 20-35 µs more of RabbitMQ's per message, and RabbitMQ 4.3 refuses it by
default (the deprecated ``global_qos``), so per-consumer prefetch stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from taskq.contracts import Delivery, QueueSpec, TransportError
from taskq.exceptions import ImproperlyConfigured
from taskq_amqp import client, properties, topology, wire
from taskq_amqp.backoff import Backoff
from taskq_amqp.counting import DeliveryCounter, message_key
from taskq_amqp.urls import AmqpSettings
from taskq_protocol import Envelope

__all__ = ["ConsumerLoop"]

logger = logging.getLogger("taskq_amqp.consumer")

T = TypeVar("T")

#: How long the I/O thread waits for a reply of RabbitMQ's before taking the connection
#: for dead.
REPLY_TIMEOUT = 30.0


@dataclass(slots=True)
class _Held:
    """A delivery received on the current connection and not settled yet."""

    queue: str
    consumer_tag: str
    key: str | None
    #: When the visibility timeout gives it back (monotonic), once fetched.
    deadline: float | None = None


@dataclass(slots=True)
class _Consumer:
    tag: str
    prefetch: int


@dataclass(slots=True)
class _Incoming:
    """A ``basic.deliver`` read by :func:`client.read_available`, until its body is in."""

    queue: str
    generation: int
    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    size: int = -1  # from the content header
    received: int = 0
    properties: dict[str, Any] = field(default_factory=dict[str, Any])
    chunks: list[bytes] = field(default_factory=list[bytes])


@dataclass(slots=True)
class _Subscription:
    exchange: str
    callback: Callable[[Envelope], None]
    queue: str = ""
    tag: str = ""


class ConsumerLoop:
    def __init__(self, settings: AmqpSettings, specs: Callable[[str], QueueSpec | None]) -> None:
        self._settings = settings
        self._specs = specs
        self._cond = threading.Condition()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        #: Settlements handed over by :meth:`settle_later`, in order: (deliveries, action).
        self._settling: list[tuple[Sequence[Delivery], str]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._running = True
        #: Why the I/O thread stopped by itself (a certificate that does not verify).
        self._fatal: ImproperlyConfigured | None = None
        self._connection: client.Connection | None = None
        self._channel: client.Channel | None = None
        self._control: client.Channel | None = None
        self._broadcasts: client.Channel | None = None
        self._channel_number = 0
        #: The consuming channel's last ``basic.qos`` prefetch (what a new consumer gets).
        self._prefetch = 0
        #: ``basic.qos-ok`` replies :meth:`_round_trip` waits for.
        self._awaiting_qos = 0
        #: Consumer tag -> (queue, generation) of the consumers whose deliveries
        #: :meth:`_on_frame` takes; py-amqp hands over the others (see there).
        self._targets: dict[str, tuple[str, int]] = {}
        self._incoming: _Incoming | None = None
        #: Deliveries read and not yet handed over (see :meth:`_hand_over`); I/O thread only.
        self._arrived: list[tuple[Delivery, _Held]] = []
        self._generation = 0
        # Shared with callers, under self._cond:
        self._buffers: dict[str, deque[Delivery]] = {}
        self._consumers: dict[str, _Consumer] = {}
        self._outstanding: dict[str, int] = {}
        self._held: dict[tuple[int, int], _Held] = {}
        self._subscriptions: dict[int, _Subscription] = {}
        self._counter = DeliveryCounter()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="taskq-amqp-io", daemon=True)
        self._thread.start()

    # -- calling into the I/O thread -------------------------------------------------------

    def call(self, function: Callable[[], T], timeout: float | None = None) -> T:
        future: Future[T] = Future()
        with self._cond:
            if not self._running:
                raise self._closed_error()
            self._commands.append((function, future))
        os.write(self._wake_w, b"x")
        return future.result(timeout)

    def settle_later(self, deliveries: Sequence[Delivery], action: str) -> None:
        """Hand ``ack``, ``requeue`` or ``drop`` to the I/O thread without waiting for it:
        settling a delivery cannot fail in a way the caller could act on (when its
        connection is gone, RabbitMQ requeued it already), and the I/O thread sends what
        was handed over before anything asked of it later, and before it closes."""
        with self._cond:
            if not self._running:
                raise self._closed_error()
            wake = not self._settling
            self._settling.append((deliveries, action))
        if wake:
            self._wake()

    def _run_settling(self) -> None:
        with self._cond:
            settling, self._settling = self._settling, []
        # Consecutive batches of one action go out together (acks: in one write).
        while settling:
            action = settling[0][1]
            deliveries: list[Delivery] = []
            while settling and settling[0][1] == action:
                deliveries.extend(settling.pop(0)[0])
            self.settle(deliveries, action)

    def _closed_error(self) -> Exception:
        """What a call into a stopped I/O thread raises (with ``_cond`` held)."""
        if self._fatal is not None:
            return self._fatal.again()
        return TransportError("the AMQP transport is closed")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- the thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = Backoff()
        heartbeat = self._settings.heartbeat
        next_tick = 0.0
        while self._running:
            if self._connection is None:
                try:
                    self._open()
                    backoff.reset()
                except ImproperlyConfigured as exc:
                    # A certificate that does not verify fails every attempt the same way:
                    # stop, and let every call (a worker's next fetch) raise it.
                    logger.error("AMQP connection refused for good: %s", exc)
                    self._lost()
                    with self._cond:
                        self._fatal = exc
                        self._running = False
                    self._fail_commands(exc)
                    break
                except Exception as exc:
                    logger.warning("AMQP connection failed (%s); retrying", exc)
                    self._lost()
                    self._fail_commands(TransportError(f"AMQP connection failed: {exc}"))
                    time.sleep(backoff.next())
                    continue
            connection = self._connection
            assert connection is not None
            try:
                self._run_commands()
                self._expire_visibility()
                self._hand_over()  # what py-amqp read while it waited for a reply above
                if not client.has_buffered_input(connection):
                    readable, _, _ = select.select(
                        [client.socket_of(connection), self._wake_r], [], [], self._wait_time()
                    )
                    if self._wake_r in readable:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                    if len(readable) == 1 and self._wake_r in readable:
                        continue
                # Read what came (a bounded amount, so commands are not starved), never
                # waiting for more than what is already there.
                for _ in range(16):
                    if client.read_available(connection, self._on_frame) < client.READ_SIZE:
                        break
                self._hand_over()
                if heartbeat and time.monotonic() >= next_tick:
                    connection.heartbeat_tick()
                    next_tick = time.monotonic() + heartbeat / 4
            except client.CONNECTION_ERRORS as exc:
                if self._running:
                    logger.warning("AMQP connection lost (%s); reconnecting", exc)
                self._lost()
            except client.ChannelError as exc:
                logger.warning("AMQP channel closed by the broker (%s); reconnecting", exc)
                self._lost()
            except Exception:
                # Whatever went wrong, the thread must live on: start from a new connection.
                logger.exception("AMQP consumer loop failed; reconnecting")
                self._lost()
        self._shutdown()

    def _wait_time(self) -> float:
        wait = 1.0
        with self._cond:
            deadlines = [h.deadline for h in self._held.values() if h.deadline is not None]
        if deadlines:
            wait = min(wait, max(min(deadlines) - time.monotonic(), 0.0))
        if self._settings.heartbeat:
            wait = min(wait, self._settings.heartbeat / 4)
        return wait

    def _open(self) -> None:
        connection = client.open_connection(self._settings, heartbeat=self._settings.heartbeat)
        self._connection = connection
        self._channel = client.open_channel(connection)
        self._channel_number = client.channel_id(self._channel)
        self._prefetch = 0
        self._control = None
        self._broadcasts = client.open_channel(connection)
        with self._cond:
            subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:
            self._start_subscription(subscription)
        self._connected.set()

    def _lost(self) -> None:
        """Forget everything tied to the dead connection: the broker requeues its unacked
        deliveries, so buffered ones are dropped and settling held ones does nothing."""
        self._connected.clear()
        connection, self._connection = self._connection, None
        self._channel = self._control = self._broadcasts = None
        self._targets.clear()
        self._incoming = None
        self._arrived.clear()
        self._awaiting_qos = 0
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.collect()
        with self._cond:
            self._generation += 1
            self._settling.clear()  # their connection is gone: RabbitMQ requeued them
            self._buffers.clear()
            self._consumers.clear()
            self._outstanding.clear()
            self._held.clear()
            self._cond.notify_all()

    def _shutdown(self) -> None:
        self._fail_commands(TransportError("the AMQP transport is closed"))
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a dead connection: requeued already
                self._run_settling()
            try:
                connection.close()
            except Exception:
                connection.collect()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run_commands(self) -> None:
        self._run_settling()
        while True:
            with self._cond:
                if not self._commands:
                    return
                function, future = self._commands.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = function()
            except client.CONNECTION_ERRORS as exc:
                future.set_exception(TransportError(f"AMQP connection lost: {exc}"))
                raise
            except client.ChannelError as exc:
                future.set_exception(TransportError(f"AMQP refused: {exc}"))
                raise
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _fail_commands(self, error: Exception) -> None:
        with self._cond:
            commands, self._commands = list(self._commands), deque()
        for _, future in commands:
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def close(self) -> None:
        with self._cond:
            if not self._running:
                return
            self._running = False
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(10)

    # -- channels --------------------------------------------------------------------------

    def _control_channel(self) -> client.Channel:
        assert self._connection is not None
        if self._control is None or not self._control.is_open:
            self._control = client.open_channel(self._connection)
        return self._control

    # -- consuming -------------------------------------------------------------------------

    def _on_frame(self, kind: int, channel: int, payload: bytes) -> bool:
        """Deliveries to this transport's consumers, frame by frame, as
        :func:`client.read_available` reads them. Anything else is py-amqp's: its replies and
        channel methods, and deliveries to a consumer being cancelled (py-amqp reads those
        itself while it waits for the cancel's reply, through the consumer's callback)."""
        if channel != self._channel_number:
            return False
        if kind == wire.FRAME_METHOD:
            if self._awaiting_qos and payload[:4] == wire.QOS_OK:
                self._awaiting_qos -= 1
                return True
            deliver = wire.deliver_of(payload)
            target = None if deliver is None else self._targets.get(deliver[0])
            if deliver is None or target is None:
                return False
            self._incoming = _Incoming(target[0], target[1], *deliver)
            return True
        incoming = self._incoming
        if incoming is None:
            return False  # the content of a method py-amqp took
        if kind == wire.FRAME_HEADER:
            incoming.size = wire.body_size_of(payload)
            incoming.properties = wire.decode_properties(payload)
        elif kind == wire.FRAME_BODY:
            incoming.chunks.append(payload)
            incoming.received += len(payload)
        else:
            return False
        if incoming.received >= incoming.size >= 0:
            self._incoming = None
            body = incoming.chunks[0] if len(incoming.chunks) == 1 else b"".join(incoming.chunks)
            self._deliver(
                incoming.queue,
                incoming.generation,
                body,
                incoming.properties,
                consumer_tag=incoming.consumer_tag,
                delivery_tag=incoming.delivery_tag,
                redelivered=incoming.redelivered,
                exchange=incoming.exchange,
                routing_key=incoming.routing_key,
            )
        return True

    def _on_message(self, queue: str, generation: int, message: client.Message) -> None:
        """A delivery py-amqp read itself (while it waited for a reply of its own)."""
        info = client.delivery_info(message)
        body, props, headers = client.message_parts(message)
        self._deliver(
            queue,
            generation,
            body,
            {**props, "application_headers": headers},
            consumer_tag=str(info.get("consumer_tag", "")),
            delivery_tag=int(info["delivery_tag"]),
            redelivered=bool(info.get("redelivered")),
            exchange=str(info.get("exchange", "")),
            routing_key=str(info.get("routing_key", "")),
        )

    def _deliver(
        self,
        queue: str,
        generation: int,
        body: bytes,
        props: dict[str, Any],
        *,
        consumer_tag: str,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
    ) -> None:
        headers: dict[str, Any] = props.pop("application_headers", None) or {}
        envelope = properties.from_wire(
            body, props, headers, exchange=exchange, routing_key=routing_key
        )
        key = message_key(queue, envelope.headers, props)
        count = self._counter.count(
            key,
            redelivered=redelivered,
            broker_count=properties.delivery_count_header(headers),
        )
        delivery = Delivery(
            queue=queue,
            envelope=envelope,
            tag=f"{generation}:{delivery_tag}",
            deliveries=count,
            handle=(generation, delivery_tag),
        )
        self._arrived.append((delivery, _Held(queue, consumer_tag, key)))

    def _hand_over(self) -> None:
        """Make what arrived since the last call fetchable, under one lock and with one
        wake-up of a waiting fetch for all of it (a read takes many deliveries at once)."""
        if self._arrived:
            arrived, self._arrived = self._arrived, []
            with self._cond:
                for delivery, held in arrived:
                    self._held[delivery.handle] = held
                    self._buffers.setdefault(delivery.queue, deque()).append(delivery)
                self._cond.notify_all()

    def _receiver(self, queue: str, generation: int) -> Callable[[client.Message], None]:
        def receive(message: client.Message) -> None:
            self._on_message(queue, generation, message)

        return receive

    def _on_cancel(self, consumer_tag: str) -> None:
        """RabbitMQ cancelled a consumer (its queue was deleted, a quorum leader moved):
        the next fetch starts one again."""
        self._targets.pop(consumer_tag, None)
        with self._cond:
            for queue, consumer in list(self._consumers.items()):
                if consumer.tag == consumer_tag:
                    del self._consumers[queue]

    def _needs_consumer(self, queue: str) -> bool:
        consumer = self._consumers.get(queue)
        if consumer is None:
            return True
        if self._buffers.get(queue):
            return False
        return self._outstanding.get(consumer.tag, 0) >= consumer.prefetch

    def needs_setup(self, queues: Sequence[str]) -> bool:
        with self._cond:
            return self._connection is None or any(self._needs_consumer(q) for q in queues)

    def setup(self, queues: Sequence[str], limit: int) -> None:
        """(On the I/O thread.) Consume every queue in ``queues`` with a window to fill.

        A consumer whose window is full is replaced: the old one is cancelled without
        waiting for the reply, the new one started with the larger of the old window and
        ``limit`` (a worker asks for its free slots, which vary, and a window that changes
        costs a ``basic.qos`` round trip of its own).
        """
        channel = self._channel
        assert channel is not None
        started = False
        retired: list[str] = []
        for queue in queues:
            with self._cond:
                needed = self._needs_consumer(queue)
                old = self._consumers.pop(queue, None)
                if not needed and old is not None:
                    self._consumers[queue] = old
                    continue
            if old is not None:
                prefetch = max(limit, old.prefetch)
                # Deliveries to the old consumer still on their way arrive before the replies
                # below: it stays a target until then.
                channel.basic_cancel(old.tag, nowait=True)
                retired.append(old.tag)
            else:
                spec = self._specs(queue)
                if spec is not None:
                    topology.declare_queue_spec(self._control_channel, spec)
                else:
                    topology.ensure_queue(self._control_channel, queue)
                prefetch = limit
            if prefetch != self._prefetch:
                # basic.qos sets the window of the consumers started next on the channel.
                channel.basic_qos(0, prefetch, False)
                self._prefetch = prefetch
            tag = str(
                channel.basic_consume(
                    queue,
                    callback=self._receiver(queue, self._generation),
                    on_cancel=self._on_cancel,
                )
            )
            self._targets[tag] = (queue, self._generation)
            with self._cond:
                self._consumers[queue] = _Consumer(tag, prefetch)
            started = True
        if started:
            self._round_trip(channel)
        for tag in retired:
            self._targets.pop(tag, None)
            client.forget_consumer(channel, tag)
        self._hand_over()  # before the fetch that asked for this looks

    def _round_trip(self, channel: client.Channel) -> None:
        """A ``basic.qos`` round trip: RabbitMQ sends a new consumer's first deliveries
        before its reply, so the fetch sees earlier queues' messages first. Its reply is
        awaited through :meth:`_on_frame`, so those deliveries are read as any others."""
        connection = self._connection
        assert connection is not None
        if client.is_tls(connection):
            channel.basic_qos(0, self._prefetch, False)
            return
        self._awaiting_qos += 1
        client.write(connection, wire.qos_frame(self._channel_number, self._prefetch))
        deadline = time.monotonic() + REPLY_TIMEOUT
        while self._awaiting_qos:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not client.wait_readable(connection, remaining):
                raise OSError(f"RabbitMQ did not answer a basic.qos in {REPLY_TIMEOUT:g} s")
            client.read_available(connection, self._on_frame)

    def take(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Buffered deliveries, earlier queues first; waits up to ``timeout`` for one."""
        deadline = time.monotonic() + timeout
        visibility = self._settings.visibility_timeout
        with self._cond:
            while True:
                got: list[Delivery] = []
                for queue in queues:
                    buffer = self._buffers.get(queue)
                    while buffer and len(got) < limit:
                        got.append(buffer.popleft())
                if got or not self._running:
                    now = time.monotonic()
                    for delivery in got:
                        held = self._held.get(delivery.handle)
                        if held is not None:
                            if held.consumer_tag:
                                self._outstanding[held.consumer_tag] = (
                                    self._outstanding.get(held.consumer_tag, 0) + 1
                                )
                            if visibility is not None:
                                held.deadline = now + visibility
                    if got and visibility is not None:
                        self._wake()  # the I/O thread sleeps until the earliest deadline
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    # -- settling --------------------------------------------------------------------------

    def _release(self, handle: Any) -> _Held | None:
        """Forget a delivery (caller holds the lock); None when it is no longer ours."""
        held = self._held.pop(handle, None) if handle[0] == self._generation else None
        if held is not None and held.consumer_tag in self._outstanding:
            self._outstanding[held.consumer_tag] -= 1
        return held

    def settle(self, deliveries: Sequence[Delivery], action: str) -> None:
        """(On the I/O thread.) ``ack``, ``requeue`` or ``drop`` deliveries still ours."""
        channel = self._channel
        connection = self._connection
        assert channel is not None
        assert connection is not None
        acked: list[int] = []
        with self._cond:
            released = [(d, self._release(d.handle)) for d in deliveries]
            # Deliveries are held in the order of their tags: the first one still held is
            # the lowest tag an ack with ``multiple`` must stay below.
            lowest = next(iter(self._held), None)
        for delivery, held in released:
            if held is None:
                continue  # settled already, given back, or its connection is gone
            tag = int(delivery.handle[1])
            if action == "ack":
                acked.append(tag)
                self._counter.forget(held.key)
            elif action == "requeue":
                channel.basic_reject(tag, True)
            else:
                channel.basic_reject(tag, False)
                self._counter.forget(held.key)
        if acked:
            # One write for the batch; one basic.ack with ``multiple`` covers every tag below
            # the lowest still held, which saves RabbitMQ work per message too.
            frames = wire.ack_frames(
                client.channel_id(channel), acked, None if lowest is None else lowest[1]
            )
            client.write(connection, frames)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        with self._cond:
            for delivery in deliveries:
                if delivery.handle[0] != self._generation:
                    continue
                held = self._held.get(delivery.handle)
                if held is not None and held.deadline is not None:
                    held.deadline = max(held.deadline, time.monotonic() + seconds)

    def is_ours(self, delivery: Delivery) -> bool:
        with self._cond:
            return delivery.handle[0] == self._generation and delivery.handle in self._held

    def _expire_visibility(self) -> None:
        now = time.monotonic()
        with self._cond:
            expired = [
                (handle, held)
                for handle, held in self._held.items()
                if held.deadline is not None and held.deadline <= now
            ]
        if not expired:
            return
        channel = self._channel
        assert channel is not None
        # Stop consuming those queues first: with a free window, RabbitMQ would hand the
        # message straight back to this consumer instead of to another. The next fetch
        # starts consuming again.
        for queue in {held.queue for _, held in expired}:
            with self._cond:
                consumer = self._consumers.pop(queue, None)
            if consumer is not None:
                channel.basic_cancel(consumer.tag)
                self._targets.pop(consumer.tag, None)
        for handle, _held in expired:
            with self._cond:
                if self._release(handle) is None:
                    continue
            channel.basic_reject(int(handle[1]), True)

    # -- broadcasts ------------------------------------------------------------------------

    def _start_subscription(self, subscription: _Subscription) -> None:
        channel = self._broadcasts
        assert channel is not None
        kind = topology.broadcast_exchange_type(subscription.exchange)
        topology.declare_exchange(self._control_channel, subscription.exchange, kind)
        queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
        channel.queue_bind(queue, subscription.exchange, "#" if kind == "topic" else "")

        def deliver(message: client.Message) -> None:
            info = client.delivery_info(message)
            body, props, headers = client.message_parts(message)
            envelope = properties.from_wire(
                body,
                props,
                headers,
                exchange=str(info.get("exchange", "")),
                routing_key=str(info.get("routing_key", "")),
            )
            try:
                subscription.callback(envelope)
            except Exception:
                logger.exception("a broadcast subscriber of %s failed", subscription.exchange)

        subscription.queue = str(queue)
        subscription.tag = str(channel.basic_consume(queue, callback=deliver, no_ack=True))

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> int:
        subscription = _Subscription(exchange, callback)
        self._start_subscription(subscription)
        key = id(subscription)
        with self._cond:
            self._subscriptions[key] = subscription
        return key

    def unsubscribe(self, key: int) -> None:
        with self._cond:
            subscription = self._subscriptions.pop(key, None)
        if subscription is None or self._broadcasts is None:
            return
        self._broadcasts.basic_cancel(subscription.tag)
        self._broadcasts.queue_delete(subscription.queue)
