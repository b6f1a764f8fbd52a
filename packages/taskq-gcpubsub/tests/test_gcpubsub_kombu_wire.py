"""kombu's own gcpubsub transport and taskq's on one emulator project: same layout, same bytes.

A Celery-shaped message kombu publishes is fetched by taskq, and one taskq publishes is
consumed by kombu, through the topic and subscription names both derive from the queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from taskq.contracts import Delivery, QueueSpec
from taskq_gcpubsub.transport import GcpubsubTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until


@pytest.fixture
def kombu_connection(pubsub_url: str) -> Iterator[Connection]:
    connection = Connection(pubsub_url, transport_options={"ack_deadline_seconds": 60})
    yield connection
    connection.release()


@pytest.fixture
def taskq_transport(pubsub_url: str) -> Iterator[GcpubsubTransport]:
    transport = GcpubsubTransport(pubsub_url, {"polling_interval": 0.05})
    transport.connect()
    yield transport
    transport.close()


def celery_queue(name: str) -> Queue:
    """A queue as Celery declares its task queues: a direct exchange of the same name."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def fetch_one(transport: GcpubsubTransport, queue: str) -> Delivery:
    got: list[Delivery] = []
    wait_until(lambda: got.extend(transport.fetch([queue], 1, 0.5)) or got, 15, message=queue)
    return got[0]


def test_kombu_publishes_taskq_fetches(
    kombu_connection: Connection, taskq_transport: GcpubsubTransport
) -> None:
    name = f"celery-{uuid.uuid4().hex[:8]}"
    queue = celery_queue(name)
    task_id = str(uuid.uuid4())
    body: list[Any] = [[2, 3], {}, {"callbacks": None, "errbacks": None, "chain": None}]
    with kombu_connection.channel() as channel:
        Producer(channel).publish(
            body,
            exchange=queue.exchange,
            routing_key=name,
            declare=[queue],
            serializer="json",
            headers={"lang": "py", "task": "tasks.add", "id": task_id, "root_id": task_id},
            correlation_id=task_id,
        )
    delivery = fetch_one(taskq_transport, name)
    envelope = delivery.envelope
    assert envelope.headers["task"] == "tasks.add"
    assert envelope.headers["id"] == task_id
    assert envelope.properties["correlation_id"] == task_id
    assert envelope.content_type == "application/json"
    assert json.loads(envelope.body) == body
    assert envelope.routing_key == name
    assert delivery.deliveries == 1
    taskq_transport.ack([delivery])
    assert taskq_transport.fetch([name], 1, 0.5) == []


def test_taskq_publishes_kombu_consumes(
    kombu_connection: Connection, taskq_transport: GcpubsubTransport
) -> None:
    name = f"celery-{uuid.uuid4().hex[:8]}"
    queue = celery_queue(name)
    taskq_transport.declare_queue(QueueSpec(name=name, exchange=name, routing_key=name))
    envelope = make_envelope(name, args=[2, 3])
    taskq_transport.publish(name, envelope)

    received: list[tuple[Any, Any]] = []
    with kombu_connection.channel() as channel:
        consumer = Consumer(channel, queues=[queue], accept=["json"])
        consumer.register_callback(lambda body, message: received.append((body, message)))
        with consumer:
            for _ in range(30):
                if received:
                    break
                try:
                    kombu_connection.drain_events(timeout=1)
                except TimeoutError:
                    continue
        assert received, "kombu got nothing"
        body, message = received[0]
        assert message.headers["id"] == task_id_of(envelope)
        assert message.headers["task"] == envelope.headers["task"]
        assert body == json.loads(envelope.body)
        message.ack()


def test_a_queue_kombu_declared_keeps_its_filter_in_taskq(
    kombu_connection: Connection, taskq_transport: GcpubsubTransport
) -> None:
    """Two queues on one exchange topic: each gets only its routing key's messages.

    The emulator ignores subscription filters; taskq drops what the filter would have kept
    out, so this holds on the emulator as on Pub/Sub.
    """
    exchange = Exchange(f"shared-{uuid.uuid4().hex[:8]}", type="direct")
    one = Queue(f"one-{uuid.uuid4().hex[:8]}", exchange, routing_key="one")
    two = Queue(f"two-{uuid.uuid4().hex[:8]}", exchange, routing_key="two")
    with kombu_connection.channel() as channel:
        producer = Producer(channel)
        producer.publish({"for": "one"}, exchange=exchange, routing_key="one", declare=[one, two])
        producer.publish({"for": "two"}, exchange=exchange, routing_key="two", declare=[one, two])
    got_one = fetch_one(taskq_transport, str(one.name))
    got_two = fetch_one(taskq_transport, str(two.name))
    assert json.loads(got_one.envelope.body) == {"for": "one"}
    assert json.loads(got_two.envelope.body) == {"for": "two"}
    taskq_transport.ack([got_one, got_two])
    assert taskq_transport.fetch([str(one.name), str(two.name)], 10, 0.5) == []
