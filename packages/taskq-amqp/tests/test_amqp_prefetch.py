"""Fetch windows on RabbitMQ: a classic queue's window follows the fetch limit in place (a
channel-wide ``basic.qos``), without the consumer being cancelled and started again, and the
transport never holds more than the window asked for; quorum queues and streams, which
refuse a channel-wide prefetch, keep a per-consumer one."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import amqp  # pyright: ignore[reportMissingTypeStubs]
import pytest

from taskq.contracts import Delivery, QueueSpec
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope, task_id_of


def _name(kind: str) -> str:
    return f"taskq-test-prefetch-{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consumer_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often py-amqp was asked to start or cancel a consumer (every consumer change the
    transport makes goes through these two methods)."""
    calls: Counter[str] = Counter()
    for method in ("basic_consume", "basic_cancel"):
        original: Callable[..., Any] = getattr(amqp.Channel, method)

        def spy(self: Any, *args: Any, _name: str = method, _original: Any = original, **kw: Any):
            calls[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(amqp.Channel, method, spy)
    return calls


@pytest.fixture
def spied(amqp_url: str, consumer_calls: Counter[str]) -> Iterator[AmqpTransport]:
    """A transport connected after the spy is in place."""
    transport = AmqpTransport(amqp_url, {})
    transport.connect()
    yield transport
    transport.close()


def _held(transport: AmqpTransport, queue: str, published: int, acked: int) -> int:
    """Messages RabbitMQ has handed to the transport and not seen settled."""
    return published - acked - transport.queue_length(queue)


def _most_held(transport: AmqpTransport, queue: str, published: int, acked: int, want: int) -> int:
    """The most the transport holds while RabbitMQ fills its window, watched until it holds
    ``want`` (or for a few seconds): a window too large shows as more than ``want``."""
    most = 0
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        most = max(most, _held(transport, queue, published, acked))
        if most >= want:
            time.sleep(0.2)  # anything beyond the window would come with it
            return max(most, _held(transport, queue, published, acked))
        time.sleep(0.02)
    return most


def test_a_changing_limit_changes_the_window_in_place(
    spied: AmqpTransport, consumer_calls: Counter[str]
) -> None:
    """A worker's fetches ask for its free slots while it still holds earlier deliveries:
    the window (held + limit) changes with each fetch. It changes in place: the queue's
    consumer is started once and never cancelled, and RabbitMQ fills the window asked for
    and never goes beyond it (beyond the last one, when it shrank: what came before stays
    buffered)."""
    queue = _name("classic")
    spied.declare_queue(QueueSpec(queue, routing_key=queue))
    published = 60
    for _ in range(published):
        spied.publish(queue, make_envelope(queue))
    spied.flush()
    starts = consumer_calls["basic_consume"]
    holding: list[Delivery] = []
    acked = last_window = 0
    for limit, settle in [(2, 0), (3, 0), (4, 1), (1, 3), (6, 0), (2, 5), (5, 2), (1, 0)]:
        got = spied.fetch([queue], limit, 10.0)
        assert 1 <= len(got) <= limit
        window = len(holding) + limit  # what this fetch asked for
        holding += got
        most = _most_held(spied, queue, published, acked, window)
        assert window <= most <= max(window, last_window)
        spied.ack(holding[:settle])
        del holding[:settle]
        acked += settle
        last_window = window
    assert consumer_calls["basic_consume"] - starts == 1
    assert consumer_calls["basic_cancel"] == 0
    spied.ack(holding)
    spied.delete_queue(queue)


def test_a_smaller_window_stops_deliveries_until_enough_are_settled(
    spied: AmqpTransport, consumer_calls: Counter[str]
) -> None:
    """What came under a wider window stays buffered for the next fetches; nothing more
    comes until the transport holds less than the smaller window."""
    queue = _name("classic")
    spied.declare_queue(QueueSpec(queue, routing_key=queue))
    published = 20
    for _ in range(published):
        spied.publish(queue, make_envelope(queue))
    spied.flush()
    first = spied.fetch([queue], 6, 10.0)
    spied.ack(first)
    acked = len(first)
    assert _most_held(spied, queue, published, acked, 6) == 6  # refilled: 6 buffered
    held = 6
    while held > 0:  # windows of 1, from the buffer, one settled before the next fetch
        [delivery] = spied.fetch([queue], 1, 10.0)
        spied.ack([delivery])
        acked += 1
        now = _held(spied, queue, published, acked)
        assert now <= held - 1 or (held == 1 and now <= 1)
        held = now
    assert _most_held(spied, queue, published, acked, 1) == 1
    assert consumer_calls["basic_cancel"] == 0
    spied.delete_queue(queue)


@pytest.mark.parametrize("kind", ["quorum", "stream"])
def test_queues_without_a_channel_wide_window_take_changing_limits(
    transport: AmqpTransport, kind: str
) -> None:
    """Quorum queues and streams are consumed with a per-consumer prefetch (RabbitMQ refuses
    to consume them under a channel-wide one), restarted when a fetch finds it full; with a
    classic queue in the same fetches, every message comes once and every ack lands."""
    special, classic = _name(kind), _name("classic")
    transport.declare_queue(QueueSpec(special, arguments={"x-queue-type": kind}))
    transport.declare_queue(QueueSpec(classic, routing_key=classic))
    assert transport.fetch([special, classic], 1, 0.3) == []  # a stream reads from here on
    envelopes = [(q, make_envelope(q)) for q in [special, classic] * 6]
    for queue, envelope in envelopes:
        transport.publish(queue, envelope)
    transport.flush()
    got: list[Delivery] = []
    limits = iter([1, 2, 3, 1, 4, 2, 5, 3, 1, 2, 3, 4] * 4)
    deadline = time.monotonic() + 30
    while len(got) < len(envelopes) and time.monotonic() < deadline:
        batch = transport.fetch([special, classic], next(limits), 1.0)
        got += batch
        transport.ack(batch[: len(batch) // 2])  # hold some, settle the rest later
        transport.ack(batch[len(batch) // 2 :])
    assert sorted(map(task_id_of, got)) == sorted(task_id_of(e) for _, e in envelopes)
    assert transport.queue_length(classic) == 0
    if kind == "quorum":
        assert transport.queue_length(special) == 0
    transport.delete_queue(special)
    transport.delete_queue(classic)


def test_a_quorum_queue_declared_elsewhere_is_consumed_per_consumer(
    transport: AmqpTransport, amqp_url: str
) -> None:
    """A quorum queue the transport has no spec for (a Celery worker declared it, say): its
    type is found out before consuming, since a channel-wide window would make RabbitMQ
    close the connection (NOT_IMPLEMENTED) on the ``basic.consume``."""
    queue = _name("foreign-quorum")
    connection = amqp.Connection(
        "localhost:5672", userid="guest", password="guest", virtual_host="/"
    )
    if not amqp_url.startswith("amqp://guest:guest@localhost:5672/"):
        pytest.skip("declares the queue with its own connection to localhost")
    connection.connect()
    try:
        channel = connection.channel()
        channel.queue_declare(
            queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
        )
        envelopes = [make_envelope(queue) for _ in range(3)]
        for envelope in envelopes:
            transport.publish(queue, envelope)
        transport.flush()
        got: list[Delivery] = []
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            got += transport.fetch([queue], 1, 1.0)
        assert sorted(map(task_id_of, got)) == sorted(map(task_id_of, envelopes))
        assert all(d.deliveries == 1 for d in got)  # never given back by a lost connection
        transport.ack(got)
        channel.queue_delete(queue)
    finally:
        connection.close()
