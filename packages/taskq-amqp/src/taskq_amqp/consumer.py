"""The consuming connection and the thread that owns it.

py-amqp is not thread-safe, and a consuming connection must be read all the time: for
heartbeats, and so a worker whose every slot is busy does not look dead to RabbitMQ
(which would hand its unacked messages to someone else). So one I/O thread per transport
owns it: it waits on the socket and on a wake-up pipe, runs the commands other threads
queue (consume, settle, subscribe), buffers deliveries, sends heartbeats, gives back
deliveries whose visibility timeout passed, and reconnects with backoff when the
connection drops (consumers are set up again on the next fetch; subscriptions at once).

Fetch limits map onto ``basic.qos`` windows. RabbitMQ fixes a consumer's own prefetch when
it starts, but applies a new channel-wide one (``basic.qos`` with ``global``, which Celery
uses on RabbitMQ) at once. So:

- A classic queue is consumed on a channel of its own, whose window is channel-wide: what
  the caller holds from that queue and has not settled, plus the fetch's ``limit``. When a
  fetch asks for another window (a worker asks for its free slots, which change all the
  time), the I/O thread sends one ``basic.qos`` and does not wait for its reply; the
  consumer runs on, never cancelled and restarted for it. The I/O thread is woken for it
  only when RabbitMQ holds messages back (the window is full and nothing is buffered);
  otherwise it goes out with whatever wakes the thread next, before any acks. A smaller
  window delivers nothing more until enough is settled; what came before it stays buffered
  for the next fetch (given back, it would come again marked redelivered). One channel per
  queue, not one for all, so that each queue has a window of its own as it had with
  per-consumer prefetch: a queue's buffered messages never use up another's. And so that
  earlier queues are served first, a fetch that finds an earlier queue's window full and
  a later queue's messages buffered asks the earlier one for a message (``basic.get``).
- Quorum queues and streams refuse a channel-wide prefetch (RabbitMQ closes the connection,
  or the channel, on such a ``basic.consume``), and a per-consumer ``basic.qos`` lifts a
  channel's channel-wide one, so they share one channel of per-consumer prefetch: a
  consumer starts with the fetch's ``limit``, and when a fetch finds its window full
  (everything it received is still held by the caller) it is cancelled and started again
  with the larger of its window and the new limit. A queue's type comes from its
  :class:`QueueSpec`, else from :func:`topology.queue_type`; a queue whose type cannot be
  told is consumed per consumer, which works for every type.
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
    #: Handed to the caller by a fetch (else still buffered).
    taken: bool = False


@dataclass(slots=True)
class _Consumer:
    tag: str
    lane: int
    #: Its own prefetch on the per-consumer lane; 0 on a windowed one.
    prefetch: int = 0


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
class _Lane:
    """A consuming channel (I/O thread only): a *windowed* one (one queue's), whose
    ``prefetch`` is a channel-wide window, or the per-consumer one, whose ``prefetch`` is
    what the consumers started next get (see the module docstring)."""

    channel: client.Channel
    number: int
    windowed: bool
    #: The last ``basic.qos`` prefetch sent (0: none, no limit).
    prefetch: int = 0
    #: ``basic.qos-ok`` replies :meth:`ConsumerLoop._on_frame` still expects.
    awaiting_qos: int = 0
    incoming: _Incoming | None = None


#: Queue types that need a per-consumer prefetch.
_PER_CONSUMER_TYPES = frozenset({"quorum", "stream"})


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
        self._connection: client.Connection | None = None
        #: Consuming channels by number: a windowed one per classic queue (also by queue),
        #: and the per-consumer one once a quorum queue or stream is consumed.
        self._lanes: dict[int, _Lane] = {}
        self._windowed: dict[str, _Lane] = {}
        self._per_consumer: _Lane | None = None
        self._control: client.Channel | None = None
        self._broadcasts: client.Channel | None = None
        #: Consumer tag -> (queue, generation, lane) of the consumers whose deliveries
        #: :meth:`_on_frame` takes; py-amqp hands over the others (see there).
        self._targets: dict[str, tuple[str, int, int]] = {}
        #: Deliveries read and not yet handed over (see :meth:`_hand_over`); I/O thread only.
        self._arrived: list[tuple[Delivery, _Held]] = []
        self._generation = 0
        # Shared with callers, under self._cond:
        self._buffers: dict[str, deque[Delivery]] = {}
        self._consumers: dict[str, _Consumer] = {}
        #: Per consumer on the per-consumer lane (whose number is ``_counted_lane``, 0 when
        #: there is none): deliveries handed to the caller and not settled yet.
        self._outstanding: dict[str, int] = {}
        self._counted_lane = 0
        self._held: dict[tuple[int, int, int], _Held] = {}
        #: Per lane: deliveries handed to the caller and not settled yet.
        self._taken: dict[int, int] = {}
        #: Per windowed lane: the window fetches asked for last (see :meth:`needs_setup`),
        #: and whether one changed since the I/O thread looked.
        self._windows: dict[int, int] = {}
        self._windows_changed = False
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
                raise TransportError("the AMQP transport is closed")
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
                raise TransportError("the AMQP transport is closed")
            wake = not self._settling
            self._settling.append((deliveries, action))
            self._untake(deliveries)
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
        self._control = self._broadcasts = None
        self._lanes.clear()
        self._windowed.clear()
        self._per_consumer = None
        self._targets.clear()
        self._arrived.clear()
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.collect()
        with self._cond:
            self._generation += 1
            self._settling.clear()  # their connection is gone: RabbitMQ requeued them
            self._buffers.clear()
            self._consumers.clear()
            self._outstanding.clear()
            self._counted_lane = 0
            self._held.clear()
            self._taken.clear()
            self._windows.clear()
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
        # Windows first: a smaller one must be in force before the acks that free it up.
        self._apply_windows()
        self._run_settling()
        while True:
            with self._cond:
                if not self._commands:
                    return
                function, future = self._commands.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._quiesce()
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

    def _open_lane(self, *, windowed: bool) -> _Lane:
        assert self._connection is not None
        channel = client.open_channel(self._connection)
        lane = _Lane(channel, client.channel_id(channel), windowed)
        self._lanes[lane.number] = lane
        return lane

    def _lane_for(self, queue: str, kind: str | None) -> _Lane:
        """A classic queue's windowed lane, else the per-consumer one (opened once each)."""
        if kind == "classic":
            lane = self._windowed.get(queue)
            if lane is None:
                lane = self._windowed[queue] = self._open_lane(windowed=True)
            return lane
        if self._per_consumer is None:
            self._per_consumer = self._open_lane(windowed=False)
            with self._cond:
                self._counted_lane = self._per_consumer.number
        return self._per_consumer

    def _apply_windows(self) -> None:
        """(On the I/O thread.) Give windowed lanes the windows fetches asked for, in place:
        one ``basic.qos`` with ``global`` each, whose reply :meth:`_on_frame` takes whenever
        it comes (over TLS, where py-amqp reads everything, it is awaited)."""
        connection = self._connection
        with self._cond:
            if not self._windows_changed or connection is None:
                return
            self._windows_changed = False
            windows = list(self._windows.items())
        for number, window in windows:
            lane = self._lanes.get(number)
            if lane is None or not lane.windowed or window == lane.prefetch:
                continue
            lane.prefetch = window
            if client.is_tls(connection):
                lane.channel.basic_qos(0, window, True)
                continue
            lane.awaiting_qos += 1
            client.write(connection, wire.qos_frame(number, window, channel_wide=True))

    def _quiesce(self) -> None:
        """Before py-amqp waits for a reply of its own: it reads every channel meanwhile,
        and would drop a ``basic.qos-ok`` a lane expects (then awaited for ever)."""
        for lane in self._lanes.values():
            if lane.awaiting_qos:
                self._await_qos(lane)

    def _await_qos(self, lane: _Lane) -> None:
        """Read until every ``basic.qos-ok`` the lane expects is in (see :meth:`_quiesce`;
        and after a reply, what RabbitMQ sent before it has been read)."""
        connection = self._connection
        assert connection is not None
        deadline = time.monotonic() + REPLY_TIMEOUT
        while lane.awaiting_qos:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not client.wait_readable(connection, remaining):
                raise OSError(f"RabbitMQ did not answer a basic.qos in {REPLY_TIMEOUT:g} s")
            client.read_available(connection, self._on_frame)

    # -- consuming -------------------------------------------------------------------------

    def _on_frame(self, kind: int, channel: int, payload: bytes) -> bool:
        """Deliveries to this transport's consumers, frame by frame, as
        :func:`client.read_available` reads them, and the ``basic.qos-ok`` replies the lanes
        expect. Anything else is py-amqp's: its replies and channel methods, and deliveries
        to a consumer being cancelled (py-amqp reads those itself while it waits for the
        cancel's reply, through the consumer's callback)."""
        lane = self._lanes.get(channel)
        if lane is None:
            return False
        if kind == wire.FRAME_METHOD:
            if lane.awaiting_qos and payload[:4] == wire.QOS_OK:
                lane.awaiting_qos -= 1
                return True
            deliver = wire.deliver_of(payload)
            target = None if deliver is None else self._targets.get(deliver[0])
            if deliver is None or target is None:
                return False
            lane.incoming = _Incoming(target[0], target[1], *deliver)
            return True
        incoming = lane.incoming
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
            lane.incoming = None
            body = incoming.chunks[0] if len(incoming.chunks) == 1 else b"".join(incoming.chunks)
            self._deliver(
                incoming.queue,
                incoming.generation,
                lane.number,
                body,
                incoming.properties,
                consumer_tag=incoming.consumer_tag,
                delivery_tag=incoming.delivery_tag,
                redelivered=incoming.redelivered,
                exchange=incoming.exchange,
                routing_key=incoming.routing_key,
            )
        return True

    def _on_message(self, queue: str, generation: int, lane: int, message: client.Message) -> None:
        """A delivery py-amqp read itself (while it waited for a reply of its own)."""
        info = client.delivery_info(message)
        body, props, headers = client.message_parts(message)
        self._deliver(
            queue,
            generation,
            lane,
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
        lane: int,
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
        # Delivery tags are per channel: the lane is part of the handle and of the tag.
        delivery = Delivery(
            queue=queue,
            envelope=envelope,
            tag=f"{generation}:{lane}:{delivery_tag}",
            deliveries=count,
            handle=(generation, lane, delivery_tag),
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

    def _receiver(self, queue: str, generation: int, lane: int) -> Callable[[client.Message], None]:
        def receive(message: client.Message) -> None:
            self._on_message(queue, generation, lane, message)

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
        """(Caller holds the lock.) No consumer, or a per-consumer one whose window is full;
        a windowed lane's window changes in place instead (see :meth:`needs_setup`)."""
        consumer = self._consumers.get(queue)
        if consumer is None:
            return True
        if not consumer.prefetch or self._buffers.get(queue):
            return False
        return self._outstanding.get(consumer.tag, 0) >= consumer.prefetch

    def _behind(self, queues: Sequence[str], index: int, window: int) -> bool:
        """(Caller holds the lock.) Whether ``queues[index]``, windowed, may have messages
        RabbitMQ holds back (its ``window`` is full, nothing is buffered) while a later queue
        of the fetch has some buffered: a wider window alone would let the later queue's be
        served first (RabbitMQ sends more only after it answered the ``basic.qos``)."""
        queue = queues[index]
        consumer = self._consumers.get(queue)
        return (
            consumer is not None
            and not consumer.prefetch
            and not self._buffers.get(queue)
            and self._taken.get(consumer.lane, 0) >= window
            and any(self._buffers.get(later) for later in queues[index + 1 :])
        )

    def needs_setup(self, queues: Sequence[str], limit: int) -> bool:
        """Whether :meth:`setup` must run on the I/O thread for this fetch. On the way, asks
        for each windowed queue's window: what the caller holds from it, plus ``limit``; the
        I/O thread applies a change without anyone waiting for it."""
        wake = needed = False
        with self._cond:
            if self._connection is None:
                return True
            for index, queue in enumerate(queues):
                consumer = self._consumers.get(queue)
                if consumer is None or self._needs_consumer(queue):
                    needed = True
                    continue
                if consumer.prefetch:
                    continue
                old = self._windows.get(consumer.lane, 0)
                if self._behind(queues, index, old):
                    needed = True  # its window changes after the basic.get (see setup)
                    continue
                taken = self._taken.get(consumer.lane, 0)
                window = taken + limit
                if window != old:
                    self._windows[consumer.lane] = window
                    self._windows_changed = True
                    # Woken only when RabbitMQ holds messages back for it; else the change
                    # goes out with whatever wakes the I/O thread next (an ack, a delivery).
                    if window > old and taken >= old and not self._buffers.get(queue):
                        wake = True
        if wake and not needed:
            self._wake()
        return needed

    def setup(self, queues: Sequence[str], limit: int) -> None:
        """(On the I/O thread.) Consume every queue in ``queues`` with a window to fill.

        A classic queue's consumer starts on its windowed lane, under the window
        :meth:`needs_setup` would ask for. A per-consumer one whose window is full is
        replaced: the old one is cancelled without waiting for the reply, the new one
        started with the larger of the old window and ``limit`` (a worker asks for its free
        slots, which vary, and a window that changes costs a ``basic.qos`` round trip of its
        own).

        A windowed queue :meth:`_behind` a later one is asked for one message with a
        ``basic.get`` (a round trip that says whether it has any), so that earlier queues
        stay first; its window changes after that, or RabbitMQ could have sent that message
        to the consumer, not yet read, and answer the ``basic.get`` with none.
        """
        with self._cond:
            behind = [
                queue
                for index, queue in enumerate(queues)
                if queue in self._consumers
                and self._behind(queues, index, self._lanes[self._consumers[queue].lane].prefetch)
            ]
        self._apply_windows()
        self._quiesce()
        started: dict[int, _Lane] = {}
        retired: list[tuple[_Lane, str]] = []
        for queue in queues:
            with self._cond:
                needed = self._needs_consumer(queue)
                old = self._consumers.pop(queue, None)
                if not needed and old is not None:
                    self._consumers[queue] = old
                    continue
            if old is not None:
                lane = self._lanes[old.lane]
                prefetch = max(limit, old.prefetch)
                # Deliveries to the old consumer still on their way arrive before the replies
                # below: it stays a target until then.
                lane.channel.basic_cancel(old.tag, nowait=True)
                retired.append((lane, old.tag))
            else:
                spec = self._specs(queue)
                if spec is not None:
                    kind = topology.declare_queue_spec(self._control_channel, spec)
                else:
                    kind = topology.ensure_queue(self._control_channel, queue)
                if kind is None:
                    kind = topology.queue_type(self._control_channel, queue)
                lane = self._lane_for(queue, kind)
                prefetch = limit
            if lane.windowed:
                prefetch = 0
                with self._cond:
                    window = self._taken.get(lane.number, 0) + limit
                    self._windows[lane.number] = window
                if window != lane.prefetch:
                    # Before the consumer starts: a new channel has no window at all.
                    lane.channel.basic_qos(0, window, True)
                    lane.prefetch = window
            elif prefetch != lane.prefetch:
                # basic.qos sets the prefetch of the consumers started next on the channel.
                lane.channel.basic_qos(0, prefetch, False)
                lane.prefetch = prefetch
            tag = str(
                lane.channel.basic_consume(
                    queue,
                    callback=self._receiver(queue, self._generation, lane.number),
                    on_cancel=self._on_cancel,
                )
            )
            self._targets[tag] = (queue, self._generation, lane.number)
            with self._cond:
                self._consumers[queue] = _Consumer(tag, lane.number, prefetch)
            started[lane.number] = lane
        for lane in started.values():
            self._round_trip(lane)
        for lane, tag in retired:
            self._targets.pop(tag, None)
            client.forget_consumer(lane.channel, tag)
        for queue in queues:
            consumer = self._consumers.get(queue)
            if consumer is None or consumer.prefetch:
                continue
            lane = self._lanes[consumer.lane]
            if queue in behind:
                message = lane.channel.basic_get(queue)
                if message is not None:
                    self._on_message(queue, self._generation, lane.number, message)
            with self._cond:  # (needs_setup left a queue behind, or all when it was called)
                self._windows[lane.number] = self._taken.get(lane.number, 0) + limit
                self._windows_changed = True
        self._apply_windows()  # replies read later (see _quiesce)
        self._hand_over()  # before the fetch that asked for this looks

    def _round_trip(self, lane: _Lane) -> None:
        """A ``basic.qos`` round trip (the lane's own prefetch again, which changes nothing):
        RabbitMQ sends a new consumer's first deliveries before its reply, so the fetch sees
        earlier queues' messages first. Its reply is awaited through :meth:`_on_frame`, so
        those deliveries are read as any others."""
        connection = self._connection
        assert connection is not None
        if client.is_tls(connection):
            lane.channel.basic_qos(0, lane.prefetch, lane.windowed)
            return
        lane.awaiting_qos += 1
        client.write(
            connection, wire.qos_frame(lane.number, lane.prefetch, channel_wide=lane.windowed)
        )
        self._await_qos(lane)

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
                            held.taken = True
                            lane = delivery.handle[1]
                            self._taken[lane] = self._taken.get(lane, 0) + 1
                            if lane == self._counted_lane:
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

    def _untake(self, deliveries: Sequence[Delivery]) -> None:
        """(Caller holds the lock.) The caller no longer holds these: the next fetch's
        window leaves them out, though the I/O thread may not have settled them yet."""
        for delivery in deliveries:
            self._untake_one(delivery.handle)

    def _untake_one(self, handle: Any) -> _Held | None:
        held = self._held.get(handle) if handle[0] == self._generation else None
        if held is not None and held.taken:
            held.taken = False
            self._taken[handle[1]] -= 1
            if held.consumer_tag in self._outstanding:
                self._outstanding[held.consumer_tag] -= 1
        return held

    def _release(self, handle: Any) -> _Held | None:
        """Forget a delivery (caller holds the lock); None when it is no longer ours."""
        held = self._untake_one(handle)
        if held is not None:
            del self._held[handle]
        return held

    def settle(self, deliveries: Sequence[Delivery], action: str) -> None:
        """(On the I/O thread.) ``ack``, ``requeue`` or ``drop`` deliveries still ours."""
        connection = self._connection
        assert connection is not None
        acked: dict[int, list[int]] = {}
        with self._cond:
            released = [(d, self._release(d.handle)) for d in deliveries]
            # Deliveries are held in the order of their tags on each channel: the first one
            # still held is the lowest tag an ack with ``multiple`` must stay below.
            lowest: dict[int, int] = {}
            if any(held is not None for _, held in released) and action == "ack":
                for _, number, tag in self._held:
                    if number not in lowest:
                        lowest[number] = tag
                        if len(lowest) == len(self._lanes):
                            break
        for delivery, held in released:
            if held is None:
                continue  # settled already, given back, or its connection is gone
            _, number, tag = delivery.handle
            if action == "ack":
                acked.setdefault(number, []).append(tag)
                self._counter.forget(held.key)
            elif action == "requeue":
                self._lanes[number].channel.basic_reject(tag, True)
            else:
                self._lanes[number].channel.basic_reject(tag, False)
                self._counter.forget(held.key)
        # One write for each channel's batch; one basic.ack with ``multiple`` covers every
        # tag below the lowest still held, which saves RabbitMQ work per message too.
        for number, tags in acked.items():
            client.write(connection, wire.ack_frames(number, tags, lowest.get(number)))

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
        # Stop consuming those queues first: with a free window, RabbitMQ would hand the
        # message straight back to this consumer instead of to another. The next fetch
        # starts consuming again.
        for queue in {held.queue for _, held in expired}:
            with self._cond:
                consumer = self._consumers.pop(queue, None)
            if consumer is not None:
                self._quiesce()
                self._lanes[consumer.lane].channel.basic_cancel(consumer.tag)
                self._targets.pop(consumer.tag, None)
        for handle, _held in expired:
            with self._cond:
                if self._release(handle) is None:
                    continue
            self._lanes[handle[1]].channel.basic_reject(int(handle[2]), True)

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
