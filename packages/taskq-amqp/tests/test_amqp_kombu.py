"""Wire compatibility with kombu 5.7's py-amqp transport (what Celery uses), on one RabbitMQ.

kombu publishes a Celery task message and taskq fetches it; taskq publishes and kombu reads
it; a message taskq leaves unacked goes back to kombu's consumer; a delayed message that
kombu routes the way Celery 5.5+ does (``celery_delayed_27``) reaches a taskq consumer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    calculate_routing_key,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from taskq.contracts import QueueSpec
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until

pytestmark = pytest.mark.interop


@pytest.fixture
def kombu(amqp_url: str) -> Iterator[Connection]:
    connection = Connection(amqp_url)
    connection.connect()
    yield connection
    connection.release()


@pytest.fixture
def queue_name() -> str:
    return f"taskq-test-kombu-{uuid.uuid4().hex[:12]}"


def _celery_message(task_id: str) -> dict[str, Any]:
    """What Celery 5's ``amqp.as_task_v2`` hands to ``producer.publish``."""
    return {
        "body": [
            [2, 3],
            {"x": "\N{SNAKE}"},
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ],
        "headers": {
            "lang": "py",
            "task": "interop.add",
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "timelimit": [None, None],
            "argsrepr": "(2, 3)",
            "kwargsrepr": "{'x': '\N{SNAKE}'}",
            "origin": "gen1@host",
            "ignore_result": False,
        },
        "correlation_id": task_id,
        "reply_to": "reply-to-me",
    }


def test_kombu_publishes_taskq_fetches(
    kombu: Connection, transport: AmqpTransport, queue_name: str
) -> None:
    exchange = Exchange(queue_name, type="direct")
    queue = Queue(
        queue_name, exchange, routing_key=queue_name, queue_arguments={"x-max-priority": 9}
    )
    task_id = str(uuid.uuid4())
    message = _celery_message(task_id)
    with kombu.Producer() as producer:
        producer.publish(
            message["body"],
            exchange=exchange,
            routing_key=queue_name,
            declare=[queue],
            headers=message["headers"],
            correlation_id=task_id,
            reply_to="reply-to-me",
            serializer="json",
            priority=7,
        )
    [delivery] = transport.fetch([queue_name], 10, 5.0)
    envelope = delivery.envelope
    assert envelope.content_type == "application/json"
    assert envelope.content_encoding == "utf-8"
    assert envelope.headers == message["headers"]
    assert envelope.properties["correlation_id"] == task_id
    assert envelope.properties["reply_to"] == "reply-to-me"
    assert envelope.properties["priority"] == 7
    assert envelope.properties["delivery_mode"] == 2
    assert envelope.properties["delivery_info"] == {
        "exchange": queue_name,
        "routing_key": queue_name,
    }
    assert json.loads(envelope.body) == message["body"]
    transport.ack([delivery])
    transport.delete_queue(queue_name)


def test_taskq_publishes_kombu_consumes(
    kombu: Connection, transport: AmqpTransport, queue_name: str
) -> None:
    transport.declare_queue(QueueSpec(queue_name, routing_key=queue_name))
    envelope = make_envelope(queue_name, args=[1, 2], kwargs={"k": "v"}, priority=3)
    envelope.properties["reply_to"] = "replies"
    transport.publish(queue_name, envelope)
    simple = kombu.SimpleQueue(Queue(queue_name, routing_key=queue_name, no_declare=True))
    try:
        received = simple.get(timeout=5)
        assert received.headers["id"] == task_id_of(envelope)
        assert received.headers["task"] == envelope.headers["task"]
        assert received.content_type == "application/json"
        assert received.properties["correlation_id"] == envelope.properties["correlation_id"]
        assert received.properties["reply_to"] == "replies"
        assert received.properties["priority"] == 3
        args, kwargs, _embed = received.decode()
        assert (args, kwargs) == ([1, 2], {"k": "v"})
        body = received.body  # py-amqp decodes it by its content-encoding for kombu
        assert (body.encode() if isinstance(body, str) else body) == envelope.body
        received.ack()
    finally:
        simple.close()
    transport.delete_queue(queue_name)


def test_unacked_by_taskq_goes_back_to_kombu(
    kombu: Connection, amqp_url: str, queue_name: str
) -> None:
    worker = AmqpTransport(amqp_url, {})
    worker.connect()
    worker.declare_queue(QueueSpec(queue_name, routing_key=queue_name))
    envelope = make_envelope(queue_name)
    worker.publish(queue_name, envelope)
    [delivery] = worker.fetch([queue_name], 1, 5.0)
    assert task_id_of(delivery) == task_id_of(envelope)
    worker.close()  # dies holding it
    simple = kombu.SimpleQueue(Queue(queue_name, routing_key=queue_name, no_declare=True))
    try:
        received = simple.get(timeout=5)
        assert received.headers["id"] == task_id_of(envelope)
        assert received.delivery_info["redelivered"] is True
        received.ack()
    finally:
        simple.close()
    cleanup = AmqpTransport(amqp_url, {})
    cleanup.connect()
    cleanup.delete_queue(queue_name)
    cleanup.close()


def test_celery_style_delayed_message_reaches_taskq(
    kombu: Connection, transport: AmqpTransport, queue_name: str
) -> None:
    """kombu's own helpers lay out the levels and bind a topic-exchange quorum queue, as
    Celery's worker does; a message routed with ``calculate_routing_key`` arrives."""
    exchange = Exchange(f"{queue_name}-x", type="topic")
    queue = Queue(
        queue_name, exchange, routing_key=queue_name, queue_arguments={"x-queue-type": "quorum"}
    )
    channel: Any = kombu.channel()
    queue.bind(channel).declare()
    channel.close()
    declare_native_delayed_delivery_exchanges_and_queues(kombu, "quorum")
    bind_queue_to_native_delayed_delivery_exchange(kombu, queue)
    task_id = str(uuid.uuid4())
    message = _celery_message(task_id)
    with kombu.Producer() as producer:
        producer.publish(
            message["body"],
            exchange=Exchange("celery_delayed_27", type="topic"),
            routing_key=calculate_routing_key(1, queue_name),
            headers=message["headers"],
            correlation_id=task_id,
            serializer="json",
        )
    assert transport.fetch([queue_name], 1, 0.2) == []
    [delivery] = transport.fetch([queue_name], 1, 15.0)
    assert delivery.envelope.headers == message["headers"]
    assert delivery.envelope.properties["delivery_info"]["routing_key"] == queue_name
    transport.ack([delivery])
    transport.delete_queue(queue_name)


def test_taskq_delayed_message_reaches_kombu(
    kombu: Connection, transport: AmqpTransport, queue_name: str
) -> None:
    transport.declare_queue(QueueSpec(queue_name, routing_key=queue_name))
    envelope = make_envelope(queue_name)
    transport.publish(queue_name, envelope, eta=time.time() + 1)
    simple = kombu.SimpleQueue(Queue(queue_name, routing_key=queue_name, no_declare=True))
    try:
        received = simple.get(timeout=15)
        assert received.headers["id"] == task_id_of(envelope)
        received.ack()
    finally:
        simple.close()
    transport.delete_queue(queue_name)


def test_events_cross_the_celeryev_topic_exchange(
    kombu: Connection, transport: AmqpTransport
) -> None:
    """Celery's event layout: ``celeryev`` is a durable topic exchange, receivers bind ``#``,
    senders route by event type (``task.succeeded``). A taskq subscriber gets kombu's event;
    a kombu receiver gets taskq's broadcast with its routing key."""
    inbox: list[Any] = []
    unsubscribe = transport.subscribe("celeryev", inbox.append)
    events = Exchange("celeryev", type="topic")
    marker = str(uuid.uuid4())
    with kombu.Producer() as producer:
        producer.publish(
            {"type": "task-succeeded", "uuid": marker},
            exchange=events,
            routing_key="task.succeeded",
            serializer="json",
        )
    wait_until(lambda: any(marker.encode() in e.body for e in inbox), 10.0, message="taskq got it")
    unsubscribe()

    received: list[Any] = []
    listen = Queue(f"taskq-test-ev-{uuid.uuid4().hex[:8]}", events, routing_key="#",
                   exclusive=True, auto_delete=True)  # fmt: skip
    channel: Any = kombu.channel()
    with Consumer(channel, [listen], callbacks=[lambda body, msg: received.append(msg)]):
        envelope = make_envelope("celeryev", headers={"x-event": marker})
        envelope.properties["delivery_info"] = {"exchange": "celeryev", "routing_key": "task.sent"}
        transport.broadcast("celeryev", envelope)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, socket.timeout):
                kombu.drain_events(timeout=0.5)
    channel.close()
    assert received, "kombu's event receiver got taskq's broadcast"
    assert received[0].delivery_info["routing_key"] == "task.sent"
    assert received[0].headers["x-event"] == marker
