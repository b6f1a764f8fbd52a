"""Wire compatibility with kombu 5.7's own SQS transport, through the same moto server.

moto is an emulator of the SQS API; what these tests prove is that kombu and taskq agree on
queue names and message bodies, which does not depend on AWS. kombu builds its endpoint from
the URL's host and port, over HTTP with ``is_secure=False``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu.connection import Connection

from taskq.contracts import QueueSpec
from taskq_protocol import Envelope, TaskMessage
from taskq_sqs.transport import SqsTransport
from taskq_testing.factories import make_envelope, task_id_of

pytestmark = pytest.mark.interop

#: kombu's long poll is shortened so a kombu read never waits 10 s for nothing.
KOMBU_OPTIONS: dict[str, Any] = {"region": "us-east-1", "is_secure": False, "wait_time_seconds": 1}


@pytest.fixture
def transport(sqs_url: str, sqs_options: dict[str, Any]) -> Iterator[SqsTransport]:
    opened = SqsTransport(sqs_url, {**sqs_options, "wait_time_seconds": 1})
    opened.connect()
    yield opened
    opened.close()


@pytest.fixture
def kombu(sqs_url: str) -> Iterator[Connection]:
    connection = Connection(sqs_url, transport_options=KOMBU_OPTIONS)
    yield connection
    connection.release()


def test_sqs_celery_client_publishes_and_taskq_fetches(
    sqs_url: str, transport: SqsTransport
) -> None:
    """A task sent by Celery (kombu's SQS transport underneath) arrives whole at taskq."""
    queue = "celery.wire"  # a dot: both sides must mangle it to celery-wire
    app = Celery("wire", broker=sqs_url)
    app.conf.broker_transport_options = KOMBU_OPTIONS
    try:
        result = app.send_task("tasks.add", args=(2, 3), kwargs={"z": 1}, queue=queue)
    finally:
        app.close()
    [delivery] = transport.fetch([queue], 10, 10)
    assert delivery.queue == queue
    assert delivery.deliveries == 1
    message = TaskMessage.decode(
        delivery.envelope.headers, delivery.envelope.properties, json.loads(delivery.envelope.body)
    )
    assert message.id == result.id
    assert message.name == "tasks.add"
    assert list(message.args) == [2, 3]
    assert message.kwargs == {"z": 1}
    assert delivery.envelope.routing_key == queue
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


def test_sqs_kombu_body_is_base64_of_the_json_envelope(
    transport: SqsTransport, kombu: Connection, sqs_client: Any
) -> None:
    """kombu's bytes on SQS decode with taskq's reader and vice versa, byte for byte."""
    queue = "wire-bytes"
    with kombu.SimpleQueue(queue) as simple:
        simple.put({"hello": "kombu"}, serializer="json")
    url = sqs_client.get_queue_url(QueueName=queue)["QueueUrl"]
    [raw] = sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    document = json.loads(base64.b64decode(raw["Body"]))
    assert set(document) == {"body", "content-encoding", "content-type", "headers", "properties"}
    assert Envelope.decode(base64.b64decode(raw["Body"])).body == b'{"hello": "kombu"}'

    envelope = make_envelope(queue)
    transport.publish(queue, envelope)
    ours = sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    bodies = [m["Body"] for m in ours["Messages"]]
    assert base64.b64encode(envelope.encode()).decode("ascii") in bodies


def test_sqs_taskq_publishes_and_kombu_consumes(transport: SqsTransport, kombu: Connection) -> None:
    """A task message taskq publishes reads as a Celery task message in kombu, and acks."""
    queue = "taskq.to.kombu"
    transport.declare_queue(QueueSpec(name=queue, routing_key=queue))
    envelope = make_envelope(queue, task="tasks.mul", args=[6, 7])
    transport.publish(queue, envelope)
    with kombu.SimpleQueue(queue) as simple:
        message = simple.get(timeout=10)
        assert message.headers["task"] == "tasks.mul"
        assert message.headers["id"] == task_id_of(envelope)
        assert message.content_type == "application/json"
        args, kwargs, _embed = message.decode()
        assert (args, kwargs) == ([6, 7], {})
        assert message.delivery_info["routing_key"] == queue
        message.ack()
    assert transport.queue_length(queue) == 0


def test_sqs_fifo_ids_from_celery_properties(transport: SqsTransport, sqs_client: Any) -> None:
    """MessageGroupId/MessageDeduplicationId set as Celery passes them reach SQS, as kombu
    sends them; kombu's default group for a FIFO message without one is ``default``."""
    queue = "orders.fifo"
    transport.declare_queue(QueueSpec(name=queue))
    grouped = make_envelope(queue)
    grouped.properties["MessageGroupId"] = "customer-7"
    grouped.properties["MessageDeduplicationId"] = "order-1"
    plain = make_envelope(queue)
    transport.publish_many([(queue, grouped, None), (queue, plain, None)])
    url = sqs_client.get_queue_url(QueueName="orders.fifo")["QueueUrl"]
    answer = sqs_client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    groups = {m["Attributes"]["MessageGroupId"] for m in answer["Messages"]}
    assert "customer-7" in groups
    dedup = {
        m["Attributes"].get("MessageDeduplicationId")
        for m in answer["Messages"]
        if m["Attributes"]["MessageGroupId"] == "customer-7"
    }
    assert dedup == {"order-1"}
    # moto hands out one group at a time, as SQS may; the other group comes next.
    if len(groups) == 1:
        more = sqs_client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
        groups |= {m["Attributes"]["MessageGroupId"] for m in more.get("Messages", [])}
    assert groups == {"customer-7", "default"}
