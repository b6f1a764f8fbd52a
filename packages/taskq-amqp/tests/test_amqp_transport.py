"""AMQP-specific behaviour beyond the conformance suite: direct replies, queue deletion,
the delayed-delivery topology Celery uses, URLs and the private-header round trip."""

from __future__ import annotations

import copy
import time
import uuid

import pytest

from taskq.contracts import QueueSpec
from taskq_amqp import delayed
from taskq_amqp.transport import AmqpTransport
from taskq_amqp.urls import parse_settings
from taskq_testing.factories import make_envelope, task_id_of


def _name(kind: str) -> str:
    return f"taskq-test-{kind}-{uuid.uuid4().hex[:12]}"


def test_send_direct_reaches_the_bound_reply_queue(transport: AmqpTransport) -> None:
    exchange, oid = _name("reply-exchange"), uuid.uuid4().hex
    queue = f"{oid}.reply.celery.pidbox"
    transport.declare_queue(
        QueueSpec(queue, exchange=exchange, routing_key=oid, arguments={"x-expires": 60_000})
    )
    envelope = make_envelope(queue)
    sent = copy.deepcopy(envelope)
    assert transport.send_direct(exchange, oid, envelope)
    [delivery] = transport.fetch([queue], 10, 5.0)
    assert delivery.envelope == sent
    transport.ack([delivery])
    transport.delete_queue(queue)


def test_send_direct_without_a_bound_queue_is_dropped(transport: AmqpTransport) -> None:
    exchange = _name("reply-exchange")
    transport.declare_queue(QueueSpec(_name("queue"), exchange=exchange, routing_key="someone"))
    assert transport.send_direct(exchange, "nobody", make_envelope("x")) is False


def test_delete_queue_removes_messages_and_is_idempotent(transport: AmqpTransport) -> None:
    queue = _name("queue")
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    transport.publish(queue, make_envelope(queue))
    transport.delete_queue(queue)
    transport.delete_queue(queue)
    assert transport.queue_length(queue) == 0


def test_topic_exchange_routing_through_the_declared_binding(transport: AmqpTransport) -> None:
    exchange, queue = _name("topic"), _name("queue")
    transport.declare_queue(
        QueueSpec(queue, exchange=exchange, exchange_type="topic", routing_key="tasks.#")
    )
    envelope = make_envelope(queue)
    envelope.properties["delivery_info"] = {"exchange": exchange, "routing_key": "tasks.high"}
    transport.publish(queue, envelope)
    [delivery] = transport.fetch([queue], 10, 5.0)
    assert task_id_of(delivery) == task_id_of(envelope)
    transport.ack([delivery])


def test_quorum_queue_counts_deliveries_in_the_broker(transport: AmqpTransport) -> None:
    queue = _name("quorum")
    transport.declare_queue(QueueSpec(queue, arguments={"x-queue-type": "quorum"}))
    transport.publish(queue, make_envelope(queue))
    [first] = transport.fetch([queue], 1, 5.0)
    assert first.deliveries == 1
    transport.reject(first, requeue=True)
    [second] = transport.fetch([queue], 1, 5.0)
    assert second.deliveries == 2
    assert "x-delivery-count" not in second.envelope.headers
    transport.ack([second])
    transport.delete_queue(queue)


def test_delayed_message_goes_through_celerys_levels(transport: AmqpTransport) -> None:
    queue = _name("queue")
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    envelope = make_envelope(queue)
    sent = copy.deepcopy(envelope)
    eta = time.time() + 1.5
    transport.publish(queue, envelope, eta=eta)
    assert transport.fetch([queue], 1, 0.2) == []
    [delivery] = transport.fetch([queue], 1, 10.0)
    assert time.time() >= eta - 0.05
    assert delivery.envelope == sent  # x-death headers of the trip are taken off
    transport.ack([delivery])


def test_delayed_routing_key_matches_kombus_layout() -> None:
    key = delayed.delayed_routing_key(5, "celery")
    assert key == "0." * 25 + "1.0.1.celery"
    assert delayed.delay_seconds(time.time() + 0.2, time.time()) == 1
    assert delayed.delay_seconds(time.time() - 5, time.time()) == 0
    levels = list(delayed.level_queues("quorum"))
    assert [lq.name for lq in levels] == [f"celery_delayed_{n}" for n in range(27, -1, -1)]
    assert levels[-1].arguments["x-dead-letter-exchange"] == "celery_delayed_delivery"
    assert levels[0].arguments["x-message-ttl"] == 2**27 * 1000


@pytest.mark.parametrize(
    ("url", "host", "port", "vhost", "tls"),
    [
        ("amqp://guest:guest@localhost:5672//", "localhost", 5672, "/", False),
        ("amqp://u:p@h/", "h", 5672, "/", False),
        ("pyamqp://u:p@h:1234/prod", "h", 1234, "prod", False),
        ("amqps://u:p@h/%2Fx", "h", 5671, "/x", True),
    ],
)
def test_urls(url: str, host: str, port: int, vhost: str, tls: bool) -> None:
    settings = parse_settings(url, {})
    assert (settings.host, settings.port, settings.virtual_host, settings.ssl) == (
        host,
        port,
        vhost,
        tls,
    )


def test_bad_fetch_arguments_raise(transport: AmqpTransport) -> None:
    with pytest.raises(ValueError, match="non-empty sequence"):
        transport.fetch([], 1, 0)
    with pytest.raises(ValueError, match="positive integer"):
        transport.fetch(["q"], 0, 0)


def test_a_queue_with_a_dlx_dead_letters_in_the_broker(transport: AmqpTransport) -> None:
    """``x-dead-letter-exchange`` in the queue's arguments: RabbitMQ itself moves what is
    rejected without requeue (or expires, or passes a quorum delivery-limit) to the same
    ``<queue>.dlq`` that dead_letter() uses, with ``x-death`` saying why."""
    queue = _name("queue")
    dlq = f"{queue}.dlq"
    transport.declare_queue(QueueSpec(dlq, routing_key=dlq))
    transport.declare_queue(
        QueueSpec(
            queue,
            routing_key=queue,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq},
        )
    )
    envelope = make_envelope(queue)
    transport.publish(queue, envelope)
    [delivery] = transport.fetch([queue], 1, 5.0)
    transport.reject(delivery, requeue=False)
    [dead] = transport.fetch([dlq], 1, 5.0)
    assert task_id_of(dead) == task_id_of(envelope)
    transport.ack([dead])
    transport.delete_queue(queue)
    transport.delete_queue(dlq)


def test_stream_queue_round_trip(transport: AmqpTransport) -> None:
    """A stream (``x-queue-type: stream``) is read with the same consume and ack, from the
    messages appended after the consumer started (RabbitMQ's default offset, ``next``)."""
    queue = _name("stream")
    transport.declare_queue(QueueSpec(queue, arguments={"x-queue-type": "stream"}))
    assert transport.fetch([queue], 5, 0.5) == []  # starts consuming
    envelope = make_envelope(queue)
    transport.publish(queue, envelope)
    [delivery] = transport.fetch([queue], 5, 10.0)
    assert task_id_of(delivery) == task_id_of(envelope)
    transport.ack([delivery])
    transport.delete_queue(queue)


def test_prefetch_follows_the_fetch_limit(transport: AmqpTransport) -> None:
    """basic.qos: a consumer started by fetch(limit=2) holds at most 2 of 10 messages; the
    rest stay ready in the queue for other workers until those 2 are settled."""
    queue = _name("queue")
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    for _ in range(10):
        transport.publish(queue, make_envelope(queue))
    first = transport.fetch([queue], 2, 5.0)
    assert len(first) == 2
    assert transport.queue_length(queue) == 8
    assert transport.fetch([queue], 2, 0.2) != []  # window full: consumer restarted, 2 more
    assert transport.queue_length(queue) == 6
    transport.delete_queue(queue)
