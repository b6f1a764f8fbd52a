# pyright: strict
"""The conformance suite every :class:`taskq.contracts.Transport` runs against its real broker.

An integration subclasses :class:`TransportConformance` in a ``test_*.py`` file, names the
class ``Test...`` and provides one fixture, ``open_transport``: a function that builds a new,
unconnected transport on *this test's* broker. Every call must reach the same broker, so two
instances behave like two workers. The suite connects and closes what it opens.

Each test uses fresh, uniquely named queues and exchanges, so a shared server is fine. What a
broker cannot do is declared with class attributes, and the tests of it are skipped with the
reason, never silently passed.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import ClassVar, Literal, Protocol

import pytest

from taskq.contracts import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    QueueSpec,
    Transport,
    dead_letter_queue,
)
from taskq_protocol import Envelope
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until

__all__ = ["TransportConformance", "TransportOpener", "Broker"]


class TransportOpener(Protocol):
    """Builds a new, unconnected transport on the test's broker.

    ``visibility_timeout`` (seconds) is how long a fetched message stays invisible before it
    is delivered again; ``None`` means the transport's default. Map it onto your transport's
    own option (Celery's name is ``broker_transport_options["visibility_timeout"]``).
    """

    def __call__(self, *, visibility_timeout: float | None = None) -> Transport: ...


class Broker:
    """The transports one test opened; whatever the test leaves open is closed afterwards."""

    def __init__(self, opener: TransportOpener) -> None:
        self._opener = opener
        self._open: list[Transport] = []

    def open(self, *, visibility_timeout: float | None = None) -> Transport:
        """A new connected instance on the same broker (another worker, say)."""
        transport = self._opener(visibility_timeout=visibility_timeout)
        transport.connect()
        self._open.append(transport)
        return transport

    def close(self, transport: Transport) -> None:
        self._open.remove(transport)
        transport.close()

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()


def _unique(kind: str) -> str:
    return f"taskq-test-{kind}-{uuid.uuid4().hex[:12]}"


class TransportConformance:
    """Every documented semantic of :class:`~taskq.contracts.Transport`, as tests.

    Subclass it as ``TestMyTransport`` and define the ``open_transport`` fixture; override the
    class attributes below where the broker differs.
    """

    #: Which envelope priority is served first within a queue: ``"higher_first"`` (9 before 0,
    #: as RabbitMQ does), ``"lower_first"`` (0 before 9, as Celery's Redis transport does), or
    #: ``None`` when the broker has no priorities.
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = "higher_first"
    #: Whether one queue hands out messages in publish order (SQS standard queues do not).
    fifo: ClassVar[bool] = True
    #: Whether ``fetch(["a", "b"], ...)`` drains ``a`` before ``b``.
    queues_in_order: ClassVar[bool] = True
    #: Whether ``broadcast``/``subscribe`` work.
    supports_broadcast: ClassVar[bool] = True
    #: Whether ``queue_length`` and ``purge`` see messages waiting for their eta. RabbitMQ's
    #: native delayed delivery keeps them in level queues shared by every destination, which
    #: cannot be counted or purged per destination; such a transport says False.
    counts_delayed: ClassVar[bool] = True
    #: The visibility timeout and delay the timed tests use, in seconds. Raise it for brokers
    #: with coarse clocks (SQS counts whole seconds).
    short_timeout: ClassVar[float] = 0.5
    #: How long past a due time the suite waits for the broker to act (redeliver, release a
    #: delayed message, wake a blocked fetch) before it fails the test.
    latency: ClassVar[float] = 2.0
    #: The size of the largest body sent; lower it only for brokers with a smaller cap.
    large_body_size: ClassVar[int] = 1 << 20

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def open_transport(self) -> TransportOpener:
        pytest.fail(
            f"{type(self).__name__} must define the `open_transport` fixture: a function "
            "(visibility_timeout=None) -> Transport that builds a new, unconnected transport "
            "on this test's broker"
        )

    @pytest.fixture
    def broker(self, open_transport: TransportOpener) -> Iterator[Broker]:
        broker = Broker(open_transport)
        yield broker
        broker.close_all()

    @pytest.fixture
    def transport(self, broker: Broker) -> Transport:
        return broker.open()

    @pytest.fixture
    def queue(self, transport: Transport) -> str:
        return self.new_queue(transport)

    # -- helpers ---------------------------------------------------------------------------

    def new_queue(self, transport: Transport) -> str:
        """Declare a fresh queue (with priorities 0-9, for brokers that need it declared)."""
        name = _unique("queue")
        transport.declare_queue(QueueSpec(name=name, routing_key=name, max_priority=9))
        return name

    def fetch_n(
        self,
        transport: Transport,
        queues: Sequence[str],
        count: int,
        *,
        limit: int = 10,
        within: float | None = None,
    ) -> list[Delivery]:
        """Fetch until ``count`` deliveries came or ``within`` (default ``latency``) passed.

        A fetch may return fewer than ``limit`` even when more are ready; never more.
        """
        got: list[Delivery] = []
        deadline = time.monotonic() + (self.latency if within is None else within)
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            want = min(limit, count - len(got))
            batch = transport.fetch(queues, want, min(remaining, 0.5))
            assert len(batch) <= want, f"fetch(limit={want}) returned {len(batch)}"
            got.extend(batch)
        return got

    def fetch_one(
        self, transport: Transport, queues: Sequence[str], *, within: float | None = None
    ) -> Delivery:
        got = self.fetch_n(transport, queues, 1, within=within)
        assert len(got) == 1, f"no message arrived on {list(queues)}"
        return got[0]

    def assert_nothing(
        self, transport: Transport, queues: Sequence[str], wait: float = 0.1
    ) -> None:
        """Nothing is ready on ``queues`` (a fetch waiting ``wait`` seconds comes back empty)."""
        got = transport.fetch(queues, 10, wait)
        assert got == [], f"expected no message, got {[task_id_of(d) for d in got]}"

    def publish_ids(self, transport: Transport, queue: str, count: int) -> list[str]:
        envelopes = [make_envelope(queue) for _ in range(count)]
        for envelope in envelopes:
            transport.publish(queue, envelope)
        return [task_id_of(e) for e in envelopes]

    # -- the contract's shape --------------------------------------------------------------

    def test_is_a_transport(self, transport: Transport) -> None:
        assert isinstance(transport, Transport)
        assert transport.schemes, "schemes names the URL schemes this transport serves"
        assert all(isinstance(s, str) and s for s in transport.schemes)

    def test_connect_is_idempotent(self, transport: Transport, queue: str) -> None:
        transport.connect()
        transport.publish(queue, make_envelope(queue))
        assert self.fetch_one(transport, [queue])

    # -- publish and fetch -----------------------------------------------------------------

    def test_round_trip_is_exact(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(
            queue,
            args=[1, "deux", {"trois": [3.0, None, True]}],
            kwargs={"ключ": "значение", "emoji": "\N{SNAKE}"},
            headers={"x-custom": {"nested": [1, 2]}, "x-unicode": "caf\u00e9"},
        )
        envelope.properties["reply_to"] = "reply-queue"
        envelope.properties["expiration"] = "60000"
        sent = copy.deepcopy(envelope)
        transport.publish(queue, envelope)
        delivery = self.fetch_one(transport, [queue])
        assert delivery.envelope == sent
        assert delivery.queue == queue
        assert delivery.deliveries == 1
        assert not delivery.redelivered
        assert isinstance(delivery.tag, str)
        assert delivery.tag

    def test_publish_does_not_change_the_envelope(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(queue)
        sent = copy.deepcopy(envelope)
        transport.publish(queue, envelope)
        assert envelope == sent

    @pytest.mark.parametrize(
        "body",
        [bytes(range(256)) * 4, b"", b"\x00", "caf\u00e9 \N{SNAKE}".encode()],
        ids=["all-bytes", "empty", "nul", "utf8"],
    )
    def test_binary_body_round_trip(self, transport: Transport, queue: str, body: bytes) -> None:
        envelope = make_envelope(
            queue,
            body=body,
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
        transport.publish(queue, envelope)
        assert self.fetch_one(transport, [queue]).envelope.body == body

    def test_large_body_round_trip(self, transport: Transport, queue: str) -> None:
        body = os.urandom(self.large_body_size)
        transport.publish(queue, make_envelope(queue, body=body, content_encoding="binary"))
        assert self.fetch_one(transport, [queue]).envelope.body == body

    def test_delivery_tags_are_distinct(self, transport: Transport, queue: str) -> None:
        self.publish_ids(transport, queue, 3)
        tags = [d.tag for d in self.fetch_n(transport, [queue], 3)]
        assert len(set(tags)) == 3

    def test_publish_many_reaches_each_queue(self, transport: Transport) -> None:
        first, second = self.new_queue(transport), self.new_queue(transport)
        envelopes = [make_envelope(q) for q in (first, second, first, second, first)]
        queues = [first, second, first, second, first]
        sent = copy.deepcopy(envelopes)
        transport.publish_many([(q, e, None) for q, e in zip(queues, envelopes, strict=True)])
        for queue in (first, second):
            expected = [e for q, e in zip(queues, sent, strict=True) if q == queue]
            got = self.fetch_n(transport, [queue], len(expected))
            assert all(d.queue == queue for d in got)
            received = [d.envelope for d in got]
            if self.fifo:
                assert received == expected
            else:
                assert sorted(map(task_id_of, received)) == sorted(map(task_id_of, expected))

    def test_publish_many_honours_eta(self, transport: Transport, queue: str) -> None:
        ready, later = make_envelope(queue), make_envelope(queue)
        eta = time.time() + self.short_timeout
        transport.publish_many([(queue, ready, None), (queue, later, eta)])
        assert task_id_of(self.fetch_one(transport, [queue])) == task_id_of(ready)
        self.assert_nothing(transport, [queue])
        delivery = self.fetch_one(transport, [queue], within=self.short_timeout + self.latency)
        assert task_id_of(delivery) == task_id_of(later)
        assert time.time() >= eta - 0.05

    def test_publish_many_of_nothing_is_a_no_op(self, transport: Transport, queue: str) -> None:
        transport.publish_many([])
        assert transport.queue_length(queue) == 0

    def test_concurrent_publishers(self, transport: Transport, queue: str) -> None:
        per_thread = 25
        published = run_in_threads(lambda _: self.publish_ids(transport, queue, per_thread), 4)
        expected = sorted(i for ids in published for i in ids)
        assert transport.queue_length(queue) == len(expected)
        got = self.fetch_n(transport, [queue], len(expected), within=self.latency * 3)
        assert sorted(map(task_id_of, got)) == expected

    # -- order -----------------------------------------------------------------------------

    def test_fifo_within_a_queue(self, transport: Transport, queue: str) -> None:
        if not self.fifo:
            pytest.skip(f"{type(self).__name__}.fifo is False: the broker does not keep order")
        ids = self.publish_ids(transport, queue, 10)
        got = self.fetch_n(transport, [queue], 10, limit=3)
        assert [task_id_of(d) for d in got] == ids

    def test_earlier_queues_are_served_first(self, transport: Transport) -> None:
        if not self.queues_in_order:
            pytest.skip(f"{type(self).__name__}.queues_in_order is False")
        first, second = self.new_queue(transport), self.new_queue(transport)
        later_ids = self.publish_ids(transport, second, 2)
        first_ids = self.publish_ids(transport, first, 2)
        got = self.fetch_n(transport, [first, second], 4, limit=1)
        assert [d.queue for d in got] == [first, first, second, second]
        assert sorted(task_id_of(d) for d in got[:2]) == sorted(first_ids)
        assert sorted(task_id_of(d) for d in got[2:]) == sorted(later_ids)

    def test_fetch_takes_only_the_named_queues(self, transport: Transport) -> None:
        wanted, other = self.new_queue(transport), self.new_queue(transport)
        [other_id] = self.publish_ids(transport, other, 1)
        self.assert_nothing(transport, [wanted])
        assert transport.queue_length(other) == 1
        assert task_id_of(self.fetch_one(transport, [other])) == other_id

    def test_priority_order(self, transport: Transport, queue: str) -> None:
        if self.priority_order is None:
            pytest.skip(f"{type(self).__name__}.priority_order is None: no priorities")
        published = [("low-1", 0), ("high", 9), ("mid", 5), ("low-2", 0)]
        for name, priority in published:
            transport.publish(queue, make_envelope(queue, task_id=name, priority=priority))
        got = [task_id_of(d) for d in self.fetch_n(transport, [queue], 4, limit=1)]
        if self.priority_order == "higher_first":
            assert got == ["high", "mid", "low-1", "low-2"]
        else:
            assert got == ["low-1", "low-2", "mid", "high"]

    # -- fetch: limits and waiting ---------------------------------------------------------

    def test_fetch_respects_limit(self, transport: Transport, queue: str) -> None:
        ids = self.publish_ids(transport, queue, 5)
        first = transport.fetch([queue], 2, self.latency)
        assert 1 <= len(first) <= 2
        rest = self.fetch_n(transport, [queue], 5 - len(first), limit=2)
        assert sorted(task_id_of(d) for d in first + rest) == sorted(ids)

    def test_fetch_returns_empty_after_timeout(self, transport: Transport, queue: str) -> None:
        timeout = self.short_timeout
        started = time.monotonic()
        assert transport.fetch([queue], 10, timeout) == []
        elapsed = time.monotonic() - started
        assert elapsed >= timeout * 0.8, f"returned after {elapsed:.3f}s, waited too little"
        assert elapsed <= timeout + self.latency, f"returned after {elapsed:.3f}s"

    def test_fetch_with_zero_timeout_returns_at_once(
        self, transport: Transport, queue: str
    ) -> None:
        started = time.monotonic()
        assert transport.fetch([queue], 10, 0) == []
        assert time.monotonic() - started < self.latency

    @pytest.mark.parametrize("publisher", ["same-instance", "other-instance"])
    def test_fetch_wakes_when_a_message_arrives(
        self, broker: Broker, transport: Transport, queue: str, publisher: str
    ) -> None:
        sender = transport if publisher == "same-instance" else broker.open()
        envelope = make_envelope(queue)
        delay, timeout = 0.2, self.latency * 5
        timer = threading.Timer(delay, sender.publish, (queue, envelope))
        started = time.monotonic()
        timer.start()
        try:
            got = transport.fetch([queue], 10, timeout)
        finally:
            timer.join()
        elapsed = time.monotonic() - started
        assert [task_id_of(d) for d in got] == [task_id_of(envelope)]
        assert elapsed < delay + self.latency, f"woke after {elapsed:.3f}s"

    def test_fetched_message_is_invisible_to_others(
        self, broker: Broker, transport: Transport, queue: str
    ) -> None:
        self.publish_ids(transport, queue, 1)
        assert self.fetch_one(transport, [queue])
        self.assert_nothing(broker.open(), [queue])
        self.assert_nothing(transport, [queue])
        assert transport.queue_length(queue) == 0

    # -- ack, reject, dead letters ---------------------------------------------------------

    def test_ack_removes_for_good(self, broker: Broker) -> None:
        transport = broker.open(visibility_timeout=self.short_timeout)
        queue = self.new_queue(transport)
        self.publish_ids(transport, queue, 3)
        transport.ack(self.fetch_n(transport, [queue], 3))
        self.assert_nothing(transport, [queue], wait=self.short_timeout * 2)
        assert transport.queue_length(queue) == 0

    def test_reject_with_requeue_delivers_again(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(queue)
        transport.publish(queue, envelope)
        transport.reject(self.fetch_one(transport, [queue]), requeue=True)
        again = self.fetch_one(transport, [queue])
        assert again.envelope.body == envelope.body
        assert task_id_of(again) == task_id_of(envelope)
        assert again.deliveries == 2
        assert again.redelivered

    def test_reject_without_requeue_drops(self, broker: Broker) -> None:
        transport = broker.open(visibility_timeout=self.short_timeout)
        queue = self.new_queue(transport)
        self.publish_ids(transport, queue, 1)
        transport.reject(self.fetch_one(transport, [queue]), requeue=False)
        self.assert_nothing(transport, [queue], wait=self.short_timeout * 2)
        assert transport.queue_length(queue) == 0

    def test_dead_letter_moves_the_message_with_its_reason(self, broker: Broker) -> None:
        transport = broker.open(visibility_timeout=self.short_timeout)
        queue = self.new_queue(transport)
        envelope = make_envelope(queue, headers={"x-keep": "me"})
        sent = copy.deepcopy(envelope)
        transport.publish(queue, envelope)
        reason = "cannot decode: bad base64 (\N{SNAKE})"
        transport.dead_letter(self.fetch_one(transport, [queue]), reason)

        dlq = dead_letter_queue(queue)
        assert transport.queue_length(dlq) == 1
        dead = self.fetch_one(transport, [dlq])
        assert dead.queue == dlq
        assert dead.envelope.headers[DEAD_LETTER_REASON_HEADER] == reason
        headers = {k: v for k, v in dead.envelope.headers.items() if k != DEAD_LETTER_REASON_HEADER}
        assert headers == sent.headers
        assert dead.envelope.body == sent.body
        assert dead.envelope.content_type == sent.content_type
        assert dead.envelope.content_encoding == sent.content_encoding
        self.assert_nothing(transport, [queue], wait=self.short_timeout * 2)
        assert transport.queue_length(queue) == 0

    # -- visibility timeout ----------------------------------------------------------------

    def test_unacked_message_is_delivered_again_after_visibility_timeout(
        self, broker: Broker
    ) -> None:
        first = broker.open(visibility_timeout=self.short_timeout)
        second = broker.open(visibility_timeout=self.short_timeout)
        queue = self.new_queue(first)
        envelope = make_envelope(queue)
        first.publish(queue, envelope)
        assert self.fetch_one(first, [queue]).deliveries == 1
        self.assert_nothing(second, [queue], wait=self.short_timeout / 2)
        for expected in (2, 3):
            again = self.fetch_one(second, [queue], within=self.short_timeout + self.latency)
            assert task_id_of(again) == task_id_of(envelope)
            assert again.envelope.body == envelope.body
            assert again.deliveries == expected
            assert again.redelivered
        second.ack([again])
        self.assert_nothing(second, [queue], wait=self.short_timeout * 2)

    def test_extend_keeps_a_delivery_invisible(self, broker: Broker) -> None:
        timeout = self.short_timeout
        worker = broker.open(visibility_timeout=timeout)
        other = broker.open(visibility_timeout=timeout)
        queue = self.new_queue(worker)
        self.publish_ids(worker, queue, 1)
        delivery = self.fetch_one(worker, [queue])
        fetched_at = time.monotonic()
        time.sleep(timeout / 2)
        worker.extend([delivery], timeout * 4)
        # Invisible well past the original timeout, whether the extension counts from now
        # or from the old deadline (both end by 4.5 timeouts after the fetch).
        watch_until = fetched_at + timeout * 3.5
        self.assert_nothing(other, [queue], wait=max(watch_until - time.monotonic(), 0))
        again = self.fetch_one(other, [queue], within=timeout * 1.5 + self.latency)
        assert again.deliveries == 2

    def test_close_returns_unacked_messages(self, broker: Broker, queue: str) -> None:
        worker = broker.open()
        ids = self.publish_ids(worker, queue, 2)
        assert len(self.fetch_n(worker, [queue], 2)) == 2
        broker.close(worker)
        got = self.fetch_n(broker.open(), [queue], 2)
        assert sorted(task_id_of(d) for d in got) == sorted(ids)
        assert all(d.deliveries == 2 and d.redelivered for d in got)

    # -- delayed delivery ------------------------------------------------------------------

    def test_delayed_message_waits_for_its_eta(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(queue)
        sent = copy.deepcopy(envelope)
        eta = time.time() + self.short_timeout * 2
        transport.publish(queue, envelope, eta=eta)
        self.assert_nothing(transport, [queue])
        assert transport.queue_length(queue) == (1 if self.counts_delayed else 0)
        delivery = self.fetch_one(transport, [queue], within=self.short_timeout * 2 + self.latency)
        assert time.time() >= eta - 0.05, "delivered before its eta"
        assert delivery.envelope == sent
        assert delivery.deliveries == 1

    def test_past_eta_is_ready_at_once(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(queue)
        transport.publish(queue, envelope, eta=time.time() - 60)
        assert task_id_of(self.fetch_one(transport, [queue])) == task_id_of(envelope)

    def test_delayed_messages_are_delivered_once_among_consumers(
        self, broker: Broker, queue: str
    ) -> None:
        consumers = [broker.open() for _ in range(3)]
        eta = time.time() + self.short_timeout
        envelopes = [make_envelope(queue) for _ in range(5)]
        for envelope in envelopes:
            consumers[0].publish(queue, envelope, eta=eta)
        seen: list[tuple[str, float]] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + self.short_timeout + self.latency * 2

        def consume(index: int) -> None:
            nonlocal stop_at
            consumer = consumers[index]
            while time.monotonic() < stop_at:
                batch = consumer.fetch([queue], 2, 0.05)
                with lock:
                    seen.extend((task_id_of(d), time.time()) for d in batch)
                    if len(seen) >= len(envelopes):
                        # Every message came: keep fetching a while, for a second copy.
                        stop_at = min(stop_at, time.monotonic() + self.short_timeout)
                if batch:
                    consumer.ack(batch)

        run_in_threads(consume, len(consumers))
        counts = Counter(task_id for task_id, _ in seen)
        assert counts == Counter(task_id_of(e) for e in envelopes)
        assert all(at >= eta - 0.05 for _, at in seen), "delivered before its eta"

    def test_long_eta_waits_in_the_broker(self, broker: Broker, queue: str) -> None:
        client = broker.open()
        envelope = make_envelope(queue)
        client.publish(queue, envelope, eta=time.time() + 3600)
        broker.close(client)
        worker = broker.open()
        self.assert_nothing(worker, [queue])
        if not self.counts_delayed:
            assert worker.queue_length(queue) == 0
            return
        assert worker.queue_length(queue) == 1
        assert worker.purge(queue) == 1
        assert worker.queue_length(queue) == 0

    # -- purge and queue length ------------------------------------------------------------

    def test_queue_length_counts_waiting_messages(self, transport: Transport, queue: str) -> None:
        delayed = 1 if self.counts_delayed else 0
        assert transport.queue_length(queue) == 0
        self.publish_ids(transport, queue, 3)
        transport.publish(queue, make_envelope(queue), eta=time.time() + 3600)
        assert transport.queue_length(queue) == 3 + delayed
        delivery = self.fetch_one(transport, [queue])
        assert transport.queue_length(queue) == 2 + delayed, "a fetched message is not waiting"
        transport.ack([delivery])
        assert transport.queue_length(queue) == 2 + delayed

    def test_purge_deletes_waiting_messages(self, transport: Transport, queue: str) -> None:
        other = self.new_queue(transport)
        self.publish_ids(transport, queue, 3)
        transport.publish(queue, make_envelope(queue), eta=time.time() + 3600)
        [kept] = self.publish_ids(transport, other, 1)
        assert transport.purge(queue) == (4 if self.counts_delayed else 3)
        assert transport.queue_length(queue) == 0
        self.assert_nothing(transport, [queue])
        assert transport.purge(queue) == 0
        assert task_id_of(self.fetch_one(transport, [other])) == kept

    # -- direct exchanges (remote-control replies) -------------------------------------------

    def bound_queue(
        self, transport: Transport, exchange: str, routing_key: str, *, expires_ms: int = 60_000
    ) -> str:
        """A fresh queue bound to the direct ``exchange``, declared as a reply queue is."""
        name = _unique("reply")
        transport.declare_queue(
            QueueSpec(
                name=name,
                exchange=exchange,
                routing_key=routing_key,
                arguments={"x-expires": expires_ms},
            )
        )
        return name

    def test_send_direct_reaches_the_bound_queue(self, broker: Broker) -> None:
        client, worker = broker.open(), broker.open()
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(client, exchange, key)
        envelope = make_envelope(queue, headers={"ticket": "t-1"})
        sent = copy.deepcopy(envelope)
        assert worker.send_direct(exchange, key, envelope) is True
        assert envelope == sent, "send_direct must not change the envelope"
        delivery = self.fetch_one(client, [queue])
        assert delivery.envelope == sent
        assert delivery.queue == queue
        client.ack([delivery])
        self.assert_nothing(client, [queue])
        client.delete_queue(queue)

    def test_send_direct_reaches_every_queue_bound_with_the_key(self, transport: Transport) -> None:
        exchange, key = _unique("direct"), uuid.uuid4().hex
        one = self.bound_queue(transport, exchange, key)
        two = self.bound_queue(transport, exchange, key)
        envelope = make_envelope(one)
        assert transport.send_direct(exchange, key, envelope)
        for queue in (one, two):
            delivery = self.fetch_one(transport, [queue])
            assert task_id_of(delivery) == task_id_of(envelope)
            transport.ack([delivery])
            transport.delete_queue(queue)

    def test_send_direct_matches_the_routing_key_exactly(self, transport: Transport) -> None:
        exchange, other_exchange = _unique("direct"), _unique("direct")
        key = uuid.uuid4().hex
        queue = self.bound_queue(transport, exchange, key)
        assert transport.send_direct(exchange, key + "x", make_envelope(queue)) is False
        assert transport.send_direct(exchange, key[:-1], make_envelope(queue)) is False
        assert transport.send_direct(exchange, "", make_envelope(queue)) is False
        assert transport.send_direct(other_exchange, key, make_envelope(queue)) is False
        self.assert_nothing(transport, [queue])
        assert transport.queue_length(queue) == 0
        transport.delete_queue(queue)

    def test_send_direct_without_a_bound_queue_returns_false(self, transport: Transport) -> None:
        exchange = _unique("direct")
        assert transport.send_direct(exchange, "nobody", make_envelope(exchange)) is False

    def test_a_bound_queue_still_takes_plain_publishes(self, transport: Transport) -> None:
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(transport, exchange, key)
        [task_id] = self.publish_ids(transport, queue, 1)
        delivery = self.fetch_one(transport, [queue])
        assert task_id_of(delivery) == task_id
        transport.ack([delivery])
        transport.delete_queue(queue)

    def test_delete_queue_removes_messages_and_bindings(self, broker: Broker) -> None:
        client, worker = broker.open(), broker.open()
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(client, exchange, key)
        kept = self.bound_queue(client, exchange, key)
        for _ in range(3):
            assert worker.send_direct(exchange, key, make_envelope(queue))
        assert client.queue_length(queue) == 3
        client.delete_queue(queue)
        assert client.queue_length(queue) == 0
        self.assert_nothing(client, [queue])
        assert client.queue_length(kept) == 3, "deleting one queue leaves the others alone"
        late = make_envelope(kept)
        assert worker.send_direct(exchange, key, late) is True
        self.assert_nothing(client, [queue])
        assert client.queue_length(kept) == 4
        client.delete_queue(kept)
        assert worker.send_direct(exchange, key, make_envelope(kept)) is False
        assert client.queue_length(kept) == 0

    def test_delete_queue_drops_a_held_delivery(self, broker: Broker) -> None:
        client, worker = broker.open(), broker.open()
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(client, exchange, key)
        assert worker.send_direct(exchange, key, make_envelope(queue))
        self.fetch_one(client, [queue])
        client.delete_queue(queue)
        broker.close(client)  # closing gives back what it holds: not a deleted queue's
        other = broker.open()
        assert other.queue_length(queue) == 0
        self.assert_nothing(other, [queue])

    def test_settling_a_deleted_queues_delivery_is_harmless(self, transport: Transport) -> None:
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(transport, exchange, key)
        for _ in range(2):
            assert transport.send_direct(exchange, key, make_envelope(queue))
        first, second = self.fetch_n(transport, [queue], 2)
        transport.delete_queue(queue)
        transport.ack([first])
        transport.reject(second, requeue=True)
        assert transport.queue_length(queue) == 0
        self.assert_nothing(transport, [queue])

    def test_delete_queue_is_idempotent(self, transport: Transport) -> None:
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(transport, exchange, key)
        transport.delete_queue(queue)
        transport.delete_queue(queue)
        transport.delete_queue(_unique("never-declared"))
        assert transport.queue_length(queue) == 0
        assert transport.send_direct(exchange, key, make_envelope(queue)) is False

    def test_a_deleted_queue_can_be_declared_again(self, transport: Transport) -> None:
        exchange, key = _unique("direct"), uuid.uuid4().hex
        queue = self.bound_queue(transport, exchange, key)
        transport.delete_queue(queue)
        transport.declare_queue(
            QueueSpec(
                name=queue, exchange=exchange, routing_key=key, arguments={"x-expires": 60_000}
            )
        )
        envelope = make_envelope(queue)
        assert transport.send_direct(exchange, key, envelope)
        delivery = self.fetch_one(transport, [queue])
        assert task_id_of(delivery) == task_id_of(envelope)
        transport.ack([delivery])
        transport.delete_queue(queue)

    # -- broadcast -------------------------------------------------------------------------

    def _require_broadcast(self) -> None:
        if not self.supports_broadcast:
            pytest.skip(f"{type(self).__name__}.supports_broadcast is False")

    def test_broadcast_reaches_every_subscriber(self, broker: Broker) -> None:
        self._require_broadcast()
        one, two, sender = broker.open(), broker.open(), broker.open()
        exchange = _unique("exchange")
        inboxes: list[list[Envelope]] = [[], [], []]
        unsubscribes = [
            one.subscribe(exchange, inboxes[0].append),
            one.subscribe(exchange, inboxes[1].append),
            two.subscribe(exchange, inboxes[2].append),
        ]
        envelope = make_envelope(exchange)
        sent = copy.deepcopy(envelope)
        sender.broadcast(exchange, envelope)
        wait_until(lambda: all(inboxes), self.latency, message="every subscriber got it")
        assert inboxes == [[sent], [sent], [sent]]
        for unsubscribe in unsubscribes:
            unsubscribe()

    def test_unsubscribe_stops_delivery(self, broker: Broker) -> None:
        self._require_broadcast()
        one, two = broker.open(), broker.open()
        exchange = _unique("exchange")
        stopped: list[Envelope] = []
        kept: list[Envelope] = []
        unsubscribe = one.subscribe(exchange, stopped.append)
        keep_unsubscribe = two.subscribe(exchange, kept.append)
        unsubscribe()
        envelope = make_envelope(exchange)
        one.broadcast(exchange, envelope)
        wait_until(lambda: kept, self.latency, message="the remaining subscriber got it")
        time.sleep(0.2)  # the other subscriber had as long, and then some
        assert stopped == []
        assert [task_id_of(e) for e in kept] == [task_id_of(envelope)]
        keep_unsubscribe()

    def test_broadcast_is_scoped_to_its_exchange(self, transport: Transport) -> None:
        self._require_broadcast()
        mine, other = _unique("exchange"), _unique("exchange")
        inbox: list[Envelope] = []
        unsubscribe = transport.subscribe(mine, inbox.append)
        transport.broadcast(other, make_envelope(other))
        expected = make_envelope(mine)
        transport.broadcast(mine, expected)
        wait_until(lambda: inbox, self.latency, message="the broadcast arrived")
        time.sleep(0.2)
        assert [task_id_of(e) for e in inbox] == [task_id_of(expected)]
        unsubscribe()

    def test_broadcast_without_subscribers_is_not_kept(self, transport: Transport) -> None:
        self._require_broadcast()
        exchange = _unique("exchange")
        transport.broadcast(exchange, make_envelope(exchange))
        inbox: list[Envelope] = []
        unsubscribe = transport.subscribe(exchange, inbox.append)
        expected = make_envelope(exchange)
        transport.broadcast(exchange, expected)
        wait_until(lambda: inbox, self.latency, message="the broadcast arrived")
        time.sleep(0.2)
        assert [task_id_of(e) for e in inbox] == [task_id_of(expected)]
        unsubscribe()

    # -- concurrency -----------------------------------------------------------------------

    @pytest.mark.parametrize("instances", ["shared", "one-per-thread"])
    def test_concurrent_consumers_claim_each_message_once(
        self, broker: Broker, transport: Transport, queue: str, instances: str
    ) -> None:
        total, threads = 200, 4
        consumers = [transport if instances == "shared" else broker.open() for _ in range(threads)]
        ids = self.publish_ids(transport, queue, total)
        claimed: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + self.latency * 5

        def consume(index: int) -> None:
            consumer = consumers[index]
            while time.monotonic() < stop_at:
                with lock:
                    if len(claimed) >= total:
                        return
                batch = consumer.fetch([queue], 5, 0.1)
                with lock:
                    claimed.extend(task_id_of(d) for d in batch)
                if batch:
                    consumer.ack(batch)

        run_in_threads(consume, threads)
        duplicates = [i for i, n in Counter(claimed).items() if n > 1]
        assert duplicates == [], f"{len(duplicates)} messages were claimed twice"
        assert sorted(claimed) == sorted(ids)
