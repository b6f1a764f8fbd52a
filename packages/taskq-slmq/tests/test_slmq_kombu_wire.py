"""Wire compatibility with kombu 5.7's own SLMQ transport, through the HTTPS EMULATOR.

kombu's transport builds its endpoint as ``https://<URL host>:<URL port>`` (its ``secure``
option is always true), logs in with the URL's user and password on the URL's virtual host as
the account, and goes through the same ``softlayer_messaging`` client taskq uses. The emulator
(tests/slmq_emulator.py, not the service) serves HTTPS with a certificate from a throwaway CA
that ``trust_slmq_https`` makes requests trust. What these tests prove: kombu and taskq agree on
queue names (queue names with ``-`` are mangled to ``_`` by both) and on the message body (kombu's
JSON envelope), so each reads the other's headers, properties and body unchanged, and neither
steals the other's in-flight messages on a shared queue. What they cannot prove: anything the
service itself did differently from the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from queue import Empty
from typing import Any

import certifi
import pytest
import requests
from celery import Celery
from kombu.connection import Connection
from kombu.message import Message
from slmq_emulator import SlmqEmulator

from taskq.contracts import TransportError
from taskq_protocol import Envelope, TaskMessage
from taskq_slmq.transport import SlmqTransport
from taskq_testing.factories import make_envelope, task_id_of

pytestmark = [pytest.mark.interop, pytest.mark.slmq_emulator]


@pytest.fixture
def emulator(trust_slmq_https: SlmqEmulator) -> SlmqEmulator:
    return trust_slmq_https


@pytest.fixture
def taskq(emulator: SlmqEmulator) -> Iterator[Callable[..., SlmqTransport]]:
    opened: list[SlmqTransport] = []

    def open_transport(**options: Any) -> SlmqTransport:
        transport = SlmqTransport(
            emulator.url, {"secure": True, "polling_interval": 0.1, **options}
        )
        transport.connect()
        opened.append(transport)
        return transport

    yield open_transport
    for transport in opened:
        transport.close()


@pytest.fixture
def kombu(emulator: SlmqEmulator) -> Iterator[Connection]:
    connection = Connection(emulator.url)
    yield connection
    connection.release()


def _kombu_publish(connection: Connection, queue: str, envelope: Envelope) -> None:
    """Publish ``envelope``'s body, headers and properties as Celery does, through kombu."""
    simple_queue = connection.SimpleQueue(queue)
    try:
        simple_queue.producer.publish(
            envelope.body,
            routing_key=queue,
            content_type=envelope.content_type,
            content_encoding=envelope.content_encoding,
            headers=envelope.headers,
            correlation_id=envelope.properties["correlation_id"],
            reply_to="celery-replies",
            declare=[simple_queue.queue],
        )
    finally:
        simple_queue.close()


def _kombu_ack(message: Message) -> None:
    """kombu's SLMQ ack, which deletes the message on the service by its ``slmq_message_id``.

    ``Message.ack()`` cannot be used: it passes ``multiple=`` to the SLMQ channel's
    ``basic_ack``, which does not take it (kombu 5.7; see
    ``test_slmq_kombu_message_ack_is_broken_in_kombu``), so this calls the channel's own
    method the way ``Message.ack`` would without the keyword.
    """
    channel: Any = message.channel
    channel.basic_ack(message.delivery_tag)


def _drain(connection: Connection, queue: str) -> list[Message]:
    """Every message kombu gets from ``queue``, acked: it waits up to 15 s for the first (a
    delayed copy may still be turning visible) and stops after 5 s without another."""
    got: list[Message] = []
    simple_queue = connection.SimpleQueue(queue, no_ack=False)
    try:
        while True:
            try:
                message = simple_queue.get(timeout=5.0 if got else 15.0)
            except Empty:
                return got
            _kombu_ack(message)
            got.append(message)
    finally:
        simple_queue.close()


# -- the connection itself -------------------------------------------------------------------


def test_slmq_both_sides_speak_verified_https(
    emulator: SlmqEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu's endpoint is HTTPS and certificates are checked: trusting only the public CAs,
    neither kombu nor taskq (``secure``) gets past the emulator's throwaway certificate."""
    assert emulator.endpoint.startswith("https://")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with Connection(emulator.url) as connection, pytest.raises(requests.exceptions.SSLError):
        connection.channel()
    with pytest.raises(TransportError, match="authentication"):
        SlmqTransport(emulator.url, {"secure": True}).connect()


# -- kombu publishes, taskq consumes ---------------------------------------------------------


def test_slmq_kombu_publishes_a_task_and_taskq_fetches_it_intact(
    kombu: Connection, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    queue = f"{unique_name}.kombu-to-taskq"  # '.' and '-': both sides must mangle them to '_'
    sent = make_envelope(
        queue,
        task="tasks.add",
        args=[2, 3],
        kwargs={"z": "caf\u00e9"},
        headers={"x-custom": {"nested": [1, 2]}},
    )
    _kombu_publish(kombu, queue, sent)

    transport = taskq()
    [delivery] = transport.fetch([queue], 10, 10.0)
    got = delivery.envelope
    assert delivery.queue == queue
    assert delivery.deliveries == 1
    assert got.body == sent.body
    assert got.headers == sent.headers
    assert got.content_type == "application/json"
    assert got.content_encoding == "utf-8"
    assert got.properties["correlation_id"] == sent.properties["correlation_id"]
    assert got.properties["reply_to"] == "celery-replies"
    assert got.properties["body_encoding"] == "base64"
    assert got.routing_key == queue
    message = TaskMessage.decode(got.headers, got.properties, json.loads(got.body))
    assert (message.name, list(message.args), message.kwargs) == (
        "tasks.add",
        [2, 3],
        {"z": "caf\u00e9"},
    )
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


def test_slmq_celery_send_task_reaches_taskq(
    emulator: SlmqEmulator, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    """Celery's own client, on kombu's SLMQ transport, sends a task taskq fetches whole."""
    queue = f"{unique_name}.celery"
    app = Celery("slmq-wire", broker=emulator.url)
    try:
        result = app.send_task("tasks.mul", args=(6, 7), kwargs={"k": 1}, queue=queue)
    finally:
        app.close()
    transport = taskq()
    [delivery] = transport.fetch([queue], 10, 10.0)
    envelope = delivery.envelope
    message = TaskMessage.decode(envelope.headers, envelope.properties, json.loads(envelope.body))
    assert message.id == result.id
    assert message.name == "tasks.mul"
    assert list(message.args) == [6, 7]
    assert message.kwargs == {"k": 1}
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


# -- taskq publishes, kombu consumes ---------------------------------------------------------


def _assert_same(message: Message, sent: Envelope, queue: str) -> None:
    assert message.body == sent.body
    assert message.headers == sent.headers
    assert message.content_type == sent.content_type
    assert message.content_encoding == sent.content_encoding
    assert message.properties["correlation_id"] == sent.properties["correlation_id"]
    assert message.delivery_info["routing_key"] == queue


def test_slmq_taskq_publishes_and_kombu_consumes_intact(
    kombu: Connection, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    queue = f"{unique_name}.taskq-to-kombu"
    sent = make_envelope(queue, task="tasks.mul", args=[6, 7], headers={"x-custom": ["a", 1]})
    transport = taskq()
    transport.publish(queue, sent)

    [message] = _drain(kombu, queue)
    _assert_same(message, sent, queue)
    args, kwargs, _embed = message.decode()
    assert (args, kwargs) == ([6, 7], {})
    assert transport.queue_length(queue) == 0  # kombu's ack deleted it on the service


def test_slmq_kombu_reads_the_redelivered_copy_taskq_left_unacked(
    kombu: Connection, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    """taskq's in-flight message is a delayed copy; when its visibility timeout passes kombu
    reads the copy as the original message, and taskq's late ack then does nothing."""
    queue = f"{unique_name}.abandoned"
    sent = make_envelope(queue, args=[1])
    transport = taskq(visibility_timeout=1)
    transport.publish(queue, sent)
    [delivery] = transport.fetch([queue], 1, 10.0)

    [message] = _drain(kombu, queue)
    _assert_same(message, sent, queue)
    transport.ack([delivery])
    assert transport.queue_length(queue) == 0


@pytest.mark.xfail(
    raises=TypeError,
    strict=True,
    reason="kombu 5.7's SLMQ Channel.basic_ack() takes no 'multiple' argument, which "
    "Message.ack() always passes (the bug kombu fixed for Qpid in celery/kombu#700)",
)
def test_slmq_kombu_message_ack_is_broken_in_kombu(
    kombu: Connection, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    """Pins a kombu defect that Celery workers on kombu's SLMQ transport hit on every ack:
    the message stays on the service and comes back after its visibility interval. Strict,
    so a kombu release that fixes it turns this red and ``_kombu_ack`` can go."""
    queue = f"{unique_name}.message-ack"
    taskq().publish(queue, make_envelope(queue))
    simple_queue = kombu.SimpleQueue(queue, no_ack=False)
    try:
        simple_queue.get(timeout=10).ack()
    finally:
        simple_queue.close()


# -- one queue, both sides -------------------------------------------------------------------


def test_slmq_shared_queue_each_message_once(
    kombu: Connection, taskq: Callable[..., SlmqTransport], unique_name: str
) -> None:
    """kombu and taskq publish onto one queue and both consume from it: every message is
    read exactly once, intact, whoever sent it, and neither side sees the other's in-flight
    messages."""
    queue = f"{unique_name}.shared"
    transport = taskq()
    from_kombu = [make_envelope(queue, args=[n], headers={"sender": "kombu"}) for n in range(3)]
    from_taskq = [make_envelope(queue, args=[n], headers={"sender": "taskq"}) for n in range(3)]
    for envelope in from_kombu:
        _kombu_publish(kombu, queue, envelope)
    for envelope in from_taskq:
        transport.publish(queue, envelope)
    sent = {task_id_of(e): e for e in [*from_kombu, *from_taskq]}

    held = transport.fetch([queue], 2, 10.0)  # in flight at taskq while kombu drains the rest
    assert len(held) == 2
    read_by_kombu = _drain(kombu, queue)
    assert len(read_by_kombu) == 4
    assert transport.fetch([queue], 10, 0.5) == []  # kombu acked all it read

    seen = [task_id_of(d) for d in held] + [m.headers["id"] for m in read_by_kombu]
    assert sorted(seen) == sorted(sent)
    for delivery in held:
        original = sent[task_id_of(delivery)]
        assert delivery.envelope.body == original.body
        assert delivery.envelope.headers == original.headers
    for message in read_by_kombu:
        _assert_same(message, sent[message.headers["id"]], queue)
    transport.ack(held)
    assert transport.queue_length(queue) == 0
