"""Direct exchanges on Redis as kombu 5.7 lays them out: remote-control replies in both
directions, against kombu's own transport on the same real Redis.

kombu binds a queue to a direct exchange with the member ``routing_key + sep + "" + sep +
queue`` in ``_kombu.binding.<exchange>`` and publishes through it by LPUSHing to every bound
queue whose key matches. Every test isolates itself with a unique ``global_keyprefix``, which
both sides put in front of the tables and the lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from taskq.contracts import QueueSpec
from taskq.control import reply_envelope, reply_queue
from taskq_protocol import Envelope, jsoncodec
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.interop

SEP = "\x06\x16"
REPLY_EXCHANGE = "reply.celery.pidbox"


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}:"


@pytest.fixture
def raw(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    if keys:
        client.delete(*keys)
    client.zrem(prefix + "_kombu.binding_deadlines", REPLY_EXCHANGE)
    client.close()


@pytest.fixture
def taskq(redis_url: str, prefix: str) -> Iterator[Callable[[], RedisTransport]]:
    opened: list[RedisTransport] = []

    def open_transport() -> RedisTransport:
        transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
        transport.connect()
        opened.append(transport)
        return transport

    yield open_transport
    for transport in opened:
        transport.close()


@pytest.fixture
def kombu(redis_url: str, prefix: str) -> Iterator[Connection]:
    connection = Connection(redis_url, transport_options={"global_keyprefix": prefix})
    yield connection
    connection.release()


def _kombu_reply_queue(oid: str) -> Queue:
    """The queue kombu's ``Mailbox.get_reply_queue`` declares for a Celery client."""
    exchange = Exchange(REPLY_EXCHANGE, type="direct", durable=False, delivery_mode="transient")
    return Queue(
        f"{oid}.{REPLY_EXCHANGE}",
        exchange=exchange,
        routing_key=oid,
        durable=False,
        auto_delete=True,
        expires=10.0,
    )


def test_reply_reaches_a_queue_kombu_declared(
    kombu: Connection, taskq: Callable[[], RedisTransport]
) -> None:
    oid = str(uuid.uuid4())
    queue = _kombu_reply_queue(oid)(kombu.default_channel)
    queue.declare()
    worker = taskq()
    envelope = reply_envelope(
        "taskq@host", "ticket-1", {"ok": "pong"}, exchange=REPLY_EXCHANGE, routing_key=oid
    )
    assert worker.send_direct(REPLY_EXCHANGE, oid, envelope) is True
    message = queue.get(no_ack=True)
    assert message is not None
    assert message.decode() == {"taskq@host": {"ok": "pong"}}
    assert message.headers["ticket"] == "ticket-1"
    queue.delete()
    assert worker.send_direct(REPLY_EXCHANGE, oid, envelope) is False


def test_kombu_reply_reaches_a_queue_taskq_declared(
    kombu: Connection, taskq: Callable[[], RedisTransport]
) -> None:
    oid = str(uuid.uuid4())
    client = taskq()
    spec = reply_queue("celery", oid)
    client.declare_queue(spec)
    exchange = Exchange(REPLY_EXCHANGE, type="direct", durable=False, delivery_mode="transient")
    with kombu.Producer() as producer:
        producer.publish(
            {"celery@host": {"ok": "pong"}},
            exchange=exchange,
            routing_key=oid,
            headers={"ticket": "ticket-2", "clock": 1},
            serializer="json",
        )
    [delivery] = client.fetch([spec.name], 10, 5.0)
    assert jsoncodec.loads(delivery.envelope.body) == {"celery@host": {"ok": "pong"}}
    assert delivery.envelope.headers["ticket"] == "ticket-2"
    client.ack([delivery])
    client.delete_queue(spec.name)


def test_binding_layout_and_delete(
    raw: redis.Redis, prefix: str, taskq: Callable[[], RedisTransport]
) -> None:
    oid = str(uuid.uuid4())
    client = taskq()
    spec = reply_queue("celery", oid)
    client.declare_queue(spec)
    table = f"{prefix}_kombu.binding.{REPLY_EXCHANGE}"
    member = f"{oid}{SEP}{SEP}{spec.name}"
    assert raw.smembers(table) == {member}
    # An expiring queue's binding is not permanent; its exchange has a deadline instead.
    assert raw.smembers(f"{prefix}_kombu.binding_permanent.{REPLY_EXCHANGE}") == set()
    assert raw.zscore(f"{prefix}_kombu.binding_deadlines", REPLY_EXCHANGE) is not None
    worker = taskq()
    assert worker.send_direct(REPLY_EXCHANGE, oid, reply_envelope("n", "t", {}))
    assert raw.llen(f"{prefix}{spec.name}") == 1
    client.delete_queue(spec.name)
    assert raw.smembers(table) == set()
    assert raw.exists(f"{prefix}{spec.name}") == 0
    assert worker.send_direct(REPLY_EXCHANGE, oid, reply_envelope("n", "t", {})) is False
    assert raw.exists(f"{prefix}{spec.name}") == 0, "no late message recreates the list"


def test_permanent_binding_is_removed_from_both_tables(
    raw: redis.Redis, prefix: str, taskq: Callable[[], RedisTransport]
) -> None:
    transport = taskq()
    spec = QueueSpec(name=f"q-{uuid.uuid4().hex}", exchange="tasks", routing_key="k")
    transport.declare_queue(spec)
    member = f"k{SEP}{SEP}{spec.name}"
    assert member in raw.smembers(f"{prefix}_kombu.binding.tasks")
    assert member in raw.smembers(f"{prefix}_kombu.binding_permanent.tasks")
    transport.delete_queue(spec.name)
    assert member not in raw.smembers(f"{prefix}_kombu.binding.tasks")
    assert member not in raw.smembers(f"{prefix}_kombu.binding_permanent.tasks")


@pytest.mark.parametrize(("priority", "suffix"), [(0, ""), (2, ""), (5, f"{SEP}3"), (9, f"{SEP}9")])
def test_send_direct_uses_the_priority_list_kombu_uses(
    raw: redis.Redis,
    prefix: str,
    taskq: Callable[[], RedisTransport],
    priority: int,
    suffix: str,
) -> None:
    transport = taskq()
    spec = reply_queue("celery", str(uuid.uuid4()))
    transport.declare_queue(spec)
    envelope = Envelope.create(
        b"{}", content_type="application/json", content_encoding="utf-8", priority=priority
    )
    assert transport.send_direct(REPLY_EXCHANGE, spec.routing_key, envelope)
    assert raw.llen(f"{prefix}{spec.name}{suffix}") == 1
    transport.delete_queue(spec.name)


def test_send_direct_ignores_bindings_of_other_routing_keys(
    kombu: Connection, taskq: Callable[[], RedisTransport]
) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    queue = _kombu_reply_queue(theirs)(kombu.default_channel)
    queue.declare()
    transport = taskq()
    assert transport.send_direct(REPLY_EXCHANGE, mine, reply_envelope("n", "t", {})) is False
    assert queue.get(no_ack=True) is None
    queue.delete()
