"""Wire compatibility with kombu's Consul transport, both through the Consul EMULATOR.

kombu's transport is a second, independent client of the same KV layout, so these tests also
check the emulator: a message kombu publishes is fetched by taskq, and the reverse.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from consul_emulator import ConsulEmulator
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from taskq.contracts import QueueSpec
from taskq_consul.transport import ConsulTransport
from taskq_protocol import jsoncodec
from taskq_testing.factories import make_envelope, task_id_of

pytestmark = [pytest.mark.consul_emulator, pytest.mark.interop]


@pytest.fixture
def queue() -> str:
    return f"taskq-wire-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def transport(consul_emulator: ConsulEmulator) -> Iterator[ConsulTransport]:
    transport = ConsulTransport(consul_emulator.url, {})
    transport.connect()
    yield transport
    transport.close()


@pytest.fixture
def kombu_connection(consul_emulator: ConsulEmulator) -> Iterator[Connection]:
    with Connection(consul_emulator.url) as connection:
        yield connection


def test_celery_message_published_by_kombu_is_fetched_by_taskq(
    kombu_connection: Connection, transport: ConsulTransport, queue: str
) -> None:
    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py",
        "task": "proj.add",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "(2, 3)",
        "kwargsrepr": "{}",
        "origin": "kombu-test",
    }
    body = [[2, 3], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    producer = Producer(kombu_connection.default_channel)
    producer.publish(
        body,
        exchange=Exchange(""),
        routing_key=queue,
        headers=headers,
        serializer="json",
        declare=[Queue(queue, routing_key=queue)],
        correlation_id=task_id,
    )
    [delivery] = transport.fetch([queue], 1, 10.0)
    assert delivery.queue == queue
    assert delivery.deliveries == 1
    assert delivery.envelope.headers["task"] == "proj.add"
    assert task_id_of(delivery) == task_id
    assert delivery.envelope.content_type == "application/json"
    assert jsoncodec.loads(delivery.envelope.body) == body
    assert delivery.envelope.properties["correlation_id"] == task_id
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


def test_message_published_by_taskq_is_consumed_by_kombu(
    kombu_connection: Connection, transport: ConsulTransport, queue: str
) -> None:
    transport.declare_queue(QueueSpec(name=queue, routing_key=queue))
    envelope = make_envelope(queue, task="proj.mul", args=[6, 7], kwargs={"x": 1})
    transport.publish(queue, envelope)
    simple = kombu_connection.SimpleQueue(queue)
    try:
        message = simple.get(timeout=10)
        assert message.headers["task"] == "proj.mul"
        assert message.headers["id"] == task_id_of(envelope)
        args, kwargs, _embed = message.decode()
        assert (args, kwargs) == ([6, 7], {"x": 1})
        message.ack()
    finally:
        simple.close()
    assert transport.queue_length(queue) == 0


def test_kombu_and_taskq_share_one_queue_in_publish_order(
    kombu_connection: Connection, transport: ConsulTransport, queue: str
) -> None:
    simple = kombu_connection.SimpleQueue(queue)
    try:
        simple.put({"n": 1})
        transport.publish(queue, make_envelope(queue, task_id="from-taskq"))
        assert transport.queue_length(queue) == 2
        first, second = transport.fetch([queue], 2, 10.0)
        # kombu's key names start with its host's monotonic clock: they sort first.
        assert jsoncodec.loads(first.envelope.body) == {"n": 1}
        assert task_id_of(second) == "from-taskq"
        transport.ack([first, second])
    finally:
        simple.close()
