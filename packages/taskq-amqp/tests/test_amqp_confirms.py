"""Pipelined publisher confirms: ``publish`` does not wait for its own confirm, but the
unconfirmed messages stay within the window, ``publish_many`` and ``flush`` wait for theirs,
``close`` leaves every message on the broker, and nacks surface as errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from taskq.contracts import QueueSpec, TransportError
from taskq_amqp.transport import AmqpTransport
from taskq_amqp.urls import parse_settings
from taskq_testing.factories import make_envelope

WINDOW = 10


def _queue() -> str:
    return f"taskq-test-confirms-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def transport(amqp_url: str) -> Iterator[AmqpTransport]:
    transport = AmqpTransport(amqp_url, {"confirm_window": WINDOW})
    transport.connect()
    yield transport
    transport.close()


def test_publishes_beyond_the_window_are_all_confirmed(transport: AmqpTransport) -> None:
    queue = _queue()
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    for _ in range(WINDOW * 10):
        transport.publish(queue, make_envelope(queue))
        assert transport.unconfirmed <= WINDOW
    transport.flush()
    assert transport.unconfirmed == 0
    assert transport.queue_length(queue) == WINDOW * 10
    transport.delete_queue(queue)


def test_a_publish_many_batch_larger_than_the_window_is_confirmed_on_return(
    transport: AmqpTransport,
) -> None:
    queue = _queue()
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    transport.publish_many([(queue, make_envelope(queue), None) for _ in range(WINDOW * 25)])
    assert transport.unconfirmed == 0
    assert transport.queue_length(queue) == WINDOW * 25
    transport.delete_queue(queue)


def test_publish_then_close_leaves_every_message_in_the_queue(amqp_url: str) -> None:
    queue, count = _queue(), 500
    publisher = AmqpTransport(amqp_url, {})
    publisher.connect()
    publisher.declare_queue(QueueSpec(queue, routing_key=queue))
    for _ in range(count):
        publisher.publish(queue, make_envelope(queue))
    publisher.close()  # no flush: close waits for the outstanding confirms
    counter = AmqpTransport(amqp_url, {})
    counter.connect()
    try:
        assert counter.queue_length(queue) == count
    finally:
        counter.delete_queue(queue)
        counter.close()


def test_confirm_publish_waits_for_each_message(amqp_url: str) -> None:
    queue = _queue()
    transport = AmqpTransport(amqp_url, {"confirm_publish": True})
    transport.connect()
    try:
        transport.declare_queue(QueueSpec(queue, routing_key=queue))
        transport.publish(queue, make_envelope(queue))
        assert transport.unconfirmed == 0
    finally:
        transport.delete_queue(queue)
        transport.close()


def test_a_refused_pipelined_publish_is_raised_by_flush(transport: AmqpTransport) -> None:
    """A full queue with ``reject-publish`` nacks: the message is sent again a few times,
    then given up, and the next call that waits says so."""
    queue = _queue()
    transport.declare_queue(
        QueueSpec(
            queue,
            routing_key=queue,
            arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
        )
    )
    transport.publish(queue, make_envelope(queue))
    transport.publish(queue, make_envelope(queue))
    with pytest.raises(TransportError, match="refused 1"):
        transport.flush()
    assert transport.unconfirmed == 0
    with pytest.raises(TransportError, match="refused 1"):
        transport.publish_many([(queue, make_envelope(queue), None)])
    assert transport.queue_length(queue) == 1
    transport.delete_queue(queue)


def test_confirm_options_are_checked() -> None:
    settings = parse_settings("amqp://localhost", {})
    assert (settings.confirm_publish, settings.confirm_window) == (False, 1000)
    with pytest.raises(ValueError, match="confirm_window"):
        parse_settings("amqp://localhost", {"confirm_window": 0})
    with pytest.raises(ValueError, match="confirm_publish"):
        parse_settings("amqp://localhost", {"confirm_publish": "yes"})


def test_an_ack_waits_for_the_confirms_of_what_was_published_before(
    amqp_url: str, unique_name: str
) -> None:
    """A worker publishes a retry (or a chain's next step) and then acks the message it came
    from: once the ack is sent, the published copy is confirmed, so a crash cannot lose both."""
    source, target = f"{unique_name}.source", f"{unique_name}.target"
    transport = AmqpTransport(amqp_url, {"confirm_window": 1000, "confirm_max_age": 60})
    transport.connect()
    try:
        for name in (source, target):
            transport.declare_queue(QueueSpec(name))
        transport.publish(source, make_envelope())
        transport.flush()
        [delivery] = transport.fetch([source], 1, 10)
        for _ in range(20):
            transport.publish(target, make_envelope())
        transport.ack([delivery])
        assert transport.unconfirmed == 0
    finally:
        transport.close()
