"""What SQS adds beyond the contract, on moto (an emulator of the SQS API): FIFO queues,
delays past SQS's 15-minute cap (with the cap lowered to 1 s so nothing waits 15 minutes),
visibility extension, redrive to dead-letter queues, and purging twice within a minute.

Timing here is moto's clock, not AWS's; the tests wait on conditions, never assert speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskq.contracts import DEAD_LETTER_REASON_HEADER, Delivery, QueueSpec, dead_letter_queue
from taskq_sqs.transport import SqsTransport
from taskq_sqs.wire import REASON_ATTRIBUTE, decode_body
from taskq_testing.factories import make_envelope, task_id_of

Open = Callable[..., SqsTransport]


@pytest.fixture
def open_sqs(sqs_url: str, sqs_options: dict[str, Any]) -> Iterator[Open]:
    opened: list[SqsTransport] = []

    def open_sqs(**options: Any) -> SqsTransport:
        transport = SqsTransport(sqs_url, {**sqs_options, "wait_time_seconds": 1, **options})
        transport.connect()
        opened.append(transport)
        return transport

    yield open_sqs
    for transport in opened:
        transport.close()


def fetch_within(transport: SqsTransport, queue: str, count: int, within: float) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < count and time.monotonic() < deadline:
        got.extend(transport.fetch([queue], count - len(got), 1.0))
    return got


def test_sqs_fifo_queue_keeps_order_within_a_group(open_sqs: Open) -> None:
    transport = open_sqs()
    queue = "orders.fifo"
    transport.declare_queue(QueueSpec(name=queue))
    envelopes = [make_envelope(queue) for _ in range(15)]
    for envelope in envelopes:
        envelope.properties["MessageGroupId"] = "one-customer"
    transport.publish_many([(queue, e, None) for e in envelopes[:12]])
    for envelope in envelopes[12:]:
        transport.publish(queue, envelope)
    got: list[str] = []
    while len(got) < len(envelopes):
        batch = fetch_within(transport, queue, 10, 10)
        assert batch, "the FIFO queue stopped delivering"
        got.extend(task_id_of(d) for d in batch)
        transport.ack(batch)  # the group's next messages come once these are done
    assert got == [task_id_of(e) for e in envelopes]


def test_sqs_fifo_queue_with_eta_is_not_delivered_early(open_sqs: Open) -> None:
    """FIFO queues take no DelaySeconds: an early message is hidden in SQS until due."""
    transport = open_sqs()
    queue = "later.fifo"
    envelope = make_envelope(queue)
    eta = time.time() + 3
    transport.publish(queue, envelope, eta=eta)
    [delivery] = fetch_within(transport, queue, 1, 15)
    assert time.time() >= eta
    assert task_id_of(delivery) == task_id_of(envelope)


def test_sqs_eta_beyond_the_max_delay_is_re_delayed_never_early(
    open_sqs: Open, sqs_client: Any
) -> None:
    """With max_delay_seconds=1 a 4-second eta takes several hops of SQS delay; each early
    surfacing sends the message again with the rest of its delay. It is never handed out
    before its eta, and arrives as a first delivery, the same message."""
    transport = open_sqs(max_delay_seconds=1)
    queue = "long-eta"
    envelope = make_envelope(queue)
    eta = time.time() + 4
    transport.publish(queue, envelope, eta=eta)
    assert transport.queue_length(queue) == 1
    url = sqs_client.get_queue_url(QueueName=queue)["QueueUrl"]
    hops = 0
    while time.time() < eta - 0.2:
        got = transport.fetch([queue], 10, 0.3)
        assert got == [], "delivered before its eta"
        delayed = sqs_client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
        hops += int(delayed)
        assert transport.queue_length(queue) == 1, "the message is waiting in SQS"
    [delivery] = fetch_within(transport, queue, 1, 10)
    assert time.time() >= eta
    assert delivery.envelope == envelope
    assert delivery.deliveries == 1
    assert hops > 0
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


def test_sqs_extend_changes_visibility_in_sqs(open_sqs: Open, sqs_client: Any) -> None:
    """extend() reaches SQS (ChangeMessageVisibilityBatch): another consumer cannot take the
    message after the original 1 s timeout, and extending less than what is left is a no-op."""
    worker = open_sqs(visibility_timeout=1)
    other = open_sqs(visibility_timeout=1)
    queue = "extended"
    worker.publish(queue, make_envelope(queue))
    deliveries = fetch_within(worker, queue, 1, 5)
    worker.extend(deliveries, 6)
    worker.extend(deliveries, 1)  # never shortens
    time.sleep(2)  # past the original timeout
    assert other.fetch([queue], 10, 1) == []
    url = sqs_client.get_queue_url(QueueName=queue)["QueueUrl"]
    in_flight = sqs_client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
    assert in_flight == "1"
    worker.ack(deliveries)
    assert other.fetch([queue], 10, 1) == []


def test_sqs_max_receive_count_redrives_to_the_dlq(open_sqs: Open, sqs_client: Any) -> None:
    """max_receive_count gives the queue a RedrivePolicy to <queue>.dlq; SQS moves a message
    received that many times without an ack there, as it does for kombu's queues."""
    transport = open_sqs(visibility_timeout=1, max_receive_count=2)
    queue = "flaky"
    transport.declare_queue(QueueSpec(name=queue))
    url = sqs_client.get_queue_url(QueueName=queue)["QueueUrl"]
    policy = json.loads(
        sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    assert policy["deadLetterTargetArn"].endswith(":flaky-dlq")
    envelope = make_envelope(queue)
    transport.publish(queue, envelope)
    counts = [d.deliveries for d in fetch_within(transport, queue, 1, 5)]
    counts += [d.deliveries for d in fetch_within(transport, queue, 1, 5)]
    assert counts == [1, 2]
    dlq = dead_letter_queue(queue)
    deadline = time.monotonic() + 10
    while transport.queue_length(dlq) == 0 and time.monotonic() < deadline:
        assert transport.fetch([queue], 10, 1) == [], "received past maxReceiveCount"
    [dead] = fetch_within(transport, dlq, 1, 5)
    assert dead.envelope == envelope


def test_sqs_dead_letter_goes_to_the_redrive_target(open_sqs: Open, sqs_client: Any) -> None:
    """A queue with an operator's RedrivePolicy: dead_letter() sends to that DLQ, with the
    reason in the header and as an SQS message attribute."""
    target = sqs_client.create_queue(QueueName="ops-dead-letters")["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})
    sqs_client.create_queue(QueueName="billing", Attributes={"RedrivePolicy": policy})
    transport = open_sqs(max_receive_count=3)
    transport.declare_queue(QueueSpec(name="billing"))  # keeps the operator's policy
    transport.publish("billing", make_envelope("billing"))
    [delivery] = fetch_within(transport, "billing", 1, 5)
    transport.dead_letter(delivery, "bad input")
    answer = sqs_client.receive_message(
        QueueUrl=target, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )
    [moved] = answer["Messages"]
    assert moved["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] == "bad input"
    assert decode_body(moved["Body"]).headers[DEAD_LETTER_REASON_HEADER] == "bad input"
    assert transport.queue_length("billing") == 0


def test_sqs_purge_twice_within_a_minute(open_sqs: Open) -> None:
    """SQS allows one PurgeQueue a minute; a second purge deletes the ready messages itself."""
    transport = open_sqs()
    queue = "purged"
    for _ in range(3):
        transport.publish(queue, make_envelope(queue))
    assert transport.purge(queue) == 3
    for _ in range(12):
        transport.publish(queue, make_envelope(queue))
    assert transport.purge(queue) == 12
    assert transport.queue_length(queue) == 0
