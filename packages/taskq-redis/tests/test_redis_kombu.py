"""Wire compatibility with kombu 5.7's own Redis transport, on the same real Redis.

Each test runs kombu and taskq side by side: what one writes, the other reads; what one
abandons, the other restores. Every test isolates itself with a unique ``global_keyprefix``
(both sides honour it) or unique queue and unacked key names, so short visibility timeouts
here never restore another test's deliveries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from taskq.contracts import QueueSpec
from taskq_protocol import Envelope
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until

pytestmark = pytest.mark.interop

SEP = "\x06\x16"


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}:"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def cleanup(raw: redis.Redis) -> Iterator[Callable[[str], None]]:
    """Delete every key starting with the registered prefixes after the test."""
    prefixes: list[str] = []
    yield prefixes.append
    for prefix in prefixes:
        keys = list(raw.scan_iter(match=prefix.replace("[", "\\[") + "*", count=10_000))
        if keys:
            raw.delete(*keys)


@pytest.fixture
def kombu_connection(redis_url: str) -> Iterator[Callable[..., Connection]]:
    opened: list[Connection] = []

    def connect(**transport_options: Any) -> Connection:
        connection = Connection(redis_url, transport_options=transport_options)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.release()


@pytest.fixture
def taskq(redis_url: str) -> Iterator[Callable[..., RedisTransport]]:
    opened: list[RedisTransport] = []

    def open_transport(**options: Any) -> RedisTransport:
        transport = RedisTransport(redis_url, options)
        transport.connect()
        opened.append(transport)
        return transport

    yield open_transport
    for transport in opened:
        transport.close()


# -- kombu publishes, taskq consumes -------------------------------------------------------------


def test_kombu_publishes_and_taskq_fetches_the_same_message(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    queue = f"{prefix}q"
    with kombu_connection(global_keyprefix=prefix) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish(
            {"hello": "caf\u00e9"},
            routing_key=queue,
            headers={"task": "demo.task", "id": "k-1", "x-custom": [1, 2]},
            correlation_id="k-1",
            reply_to="replies",
        )
    transport = taskq(global_keyprefix=prefix)
    [delivery] = transport.fetch([queue], 10, 2.0)
    envelope = delivery.envelope
    assert delivery.queue == queue
    assert delivery.deliveries == 1
    assert envelope.body == b'{"hello": "caf\\u00e9"}'
    assert envelope.content_type == "application/json"
    assert envelope.content_encoding == "utf-8"
    assert envelope.headers == {"task": "demo.task", "id": "k-1", "x-custom": [1, 2]}
    assert envelope.properties["correlation_id"] == "k-1"
    assert envelope.properties["reply_to"] == "replies"
    assert envelope.properties["body_encoding"] == "base64"
    assert envelope.delivery_info == {"exchange": "", "routing_key": queue}
    transport.ack([delivery])


def test_taskq_serves_kombu_priorities_lowest_number_first(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    unique_name: str,
    raw: redis.Redis,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(unique_name)
    queue = unique_name
    with kombu_connection() as conn:
        producer = conn.Producer(serializer="json")
        for name, priority in [("p9", 9), ("p0", 0), ("p5", 5), ("p2", 2), ("p7", 7)]:
            producer.publish(
                {"n": name}, routing_key=queue, priority=priority, headers={"id": name}
            )
    # kombu's lists: 0-2 in the queue itself, 3-5 in step 3, 6-8 in step 6, 9 in step 9.
    assert raw.llen(queue) == 2
    assert raw.llen(f"{queue}{SEP}3") == 1
    assert raw.llen(f"{queue}{SEP}6") == 1
    assert raw.llen(f"{queue}{SEP}9") == 1
    transport = taskq()
    got = [d.envelope.headers["id"] for d in transport.fetch([queue], 10, 2.0)]
    assert got == ["p0", "p2", "p5", "p7", "p9"]


def test_taskq_publishes_where_kombu_consumes(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    unique_name: str,
    raw: redis.Redis,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(unique_name)
    queue = unique_name
    transport = taskq()
    low = make_envelope(queue, args=[1], headers={"x-custom": {"a": [1]}}, priority=0)
    high_number = make_envelope(queue, args=[2], priority=6)
    transport.publish(queue, high_number)
    transport.publish(queue, low)
    assert raw.llen(queue) == 1
    assert raw.llen(f"{queue}{SEP}6") == 1
    with kombu_connection() as conn:
        simple = conn.SimpleQueue(queue, no_ack=False)
        first = simple.get(timeout=2)
        second = simple.get(timeout=2)
        for message, sent in ((first, low), (second, high_number)):
            assert message.body == sent.body
            assert message.headers == sent.headers
            assert message.content_type == sent.content_type
            assert message.content_encoding == sent.content_encoding
            assert message.properties["correlation_id"] == sent.properties["correlation_id"]
            assert message.properties["priority"] == sent.properties["priority"]
            assert message.delivery_info["routing_key"] == queue
            assert message.payload == [list(sent_args(sent)), {}, _embed(sent)]
            message.ack()
        simple.close()


def sent_args(envelope: Envelope) -> list[Any]:
    from taskq_protocol import jsoncodec

    args: list[Any] = jsoncodec.loads(envelope.body)[0]
    return args


def _embed(envelope: Envelope) -> Any:
    from taskq_protocol import jsoncodec

    return jsoncodec.loads(envelope.body)[2]


# -- bindings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange_type", "routing_key", "arguments"),
    [
        ("direct", "jobs", {}),
        ("topic", "jobs.*.high", {}),
        ("direct", "jobs", {"x-expires": 60_000}),
    ],
    ids=["direct", "topic", "x-expires"],
)
def test_declare_queue_writes_the_bindings_kombu_writes(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    raw: redis.Redis,
    prefix: str,
    cleanup: Callable[[str], None],
    exchange_type: str,
    routing_key: str,
    arguments: dict[str, Any],
) -> None:
    cleanup(prefix)
    exchange, queue = "ex", "work"

    def tables() -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key in raw.scan_iter(match=prefix + "*", count=10_000):
            raw_key: Any = key  # bytes: the client does not decode
            name = raw_key.decode()[len(prefix) :]
            kind: Any = raw.type(key)
            kind = kind.decode()
            if kind == "set":
                found[name] = raw.smembers(key)
            elif kind == "zset":
                found[name] = [member for member, _ in raw.zrange(key, 0, -1, withscores=True)]
        return found

    with kombu_connection(global_keyprefix=prefix) as conn:
        Queue(
            queue,
            Exchange(exchange, exchange_type),
            routing_key=routing_key,
            queue_arguments=arguments or None,
        )(conn.default_channel).declare()
    written_by_kombu = tables()
    assert written_by_kombu, "kombu wrote no binding table"
    raw.delete(*raw.scan_iter(match=prefix + "*", count=10_000))

    transport = taskq(global_keyprefix=prefix)
    transport.declare_queue(
        QueueSpec(
            name=queue,
            exchange=exchange,
            exchange_type=exchange_type,
            routing_key=routing_key,
            arguments=arguments,
        )
    )
    assert tables() == written_by_kombu


def test_declare_queue_on_the_default_exchange_writes_no_table(
    taskq: Callable[..., RedisTransport], raw: redis.Redis, prefix: str
) -> None:
    taskq(global_keyprefix=prefix).declare_queue(QueueSpec(name="q", routing_key="q"))
    assert list(raw.scan_iter(match=prefix + "*", count=10_000)) == []


def test_kombu_publishes_through_a_table_taskq_declared(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    transport = taskq(global_keyprefix=prefix)
    transport.declare_queue(
        QueueSpec(name="urgent", exchange="tasks", exchange_type="topic", routing_key="urgent.#")
    )
    with kombu_connection(global_keyprefix=prefix) as conn:
        # An exchange this kombu process never declared: it routes by the stored table.
        conn.default_channel.exchange_declare("tasks", "topic")
        conn.Producer().publish({"n": 1}, exchange="tasks", routing_key="urgent.now.please")
    [delivery] = transport.fetch(["urgent"], 10, 2.0)
    assert delivery.envelope.delivery_info["exchange"] == "tasks"


# -- ack emulation and restore -------------------------------------------------------------------


def test_unacked_record_is_kombus_format(
    taskq: Callable[..., RedisTransport],
    raw: redis.Redis,
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    import json

    cleanup(prefix)
    transport = taskq(global_keyprefix=prefix)
    envelope = make_envelope("q", priority=3)
    transport.publish("q", envelope)
    [delivery] = transport.fetch(["q"], 1, 2.0)
    record = raw.hget(f"{prefix}unacked", delivery.tag)
    assert record is not None
    message, exchange, routing_key = json.loads(record)
    assert Envelope.from_dict(message) == envelope
    assert (exchange, routing_key) == ("", "q")
    score = raw.zscore(f"{prefix}unacked_index", delivery.tag)
    assert score is not None
    assert abs(score - time.time()) < 5
    transport.ack([delivery])
    assert raw.hget(f"{prefix}unacked", delivery.tag) is None
    assert raw.zscore(f"{prefix}unacked_index", delivery.tag) is None


def test_kombu_restores_what_taskq_took_and_abandoned(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    queue = "work"
    transport = taskq(global_keyprefix=prefix, visibility_timeout=3600)
    envelope = make_envelope(queue, priority=6)
    transport.publish(queue, envelope)
    [taken] = transport.fetch([queue], 1, 2.0)
    assert transport.fetch([queue], 1, 0) == []
    # The taskq worker died holding it (never acked, never closed).
    transport._unacked.take_all()  # pyright: ignore[reportPrivateUsage]

    with kombu_connection(global_keyprefix=prefix, visibility_timeout=0.2) as conn:
        time.sleep(0.3)
        channel: Any = conn.default_channel
        channel.qos.restore_visible(num=100)
        simple = conn.SimpleQueue(queue, no_ack=False)
        message = simple.get(timeout=2)
        assert message.headers["id"] == task_id_of(envelope)
        assert message.body == envelope.body
        assert message.headers["redelivered"] is True
        assert message.delivery_info["redelivered"] is True
        # kombu honoured the priority when it put it back.
        message.requeue()
        simple.close()

    # And taskq counts the deliveries across kombu's restores.
    again = transport.fetch([queue], 1, 2.0)
    assert [task_id_of(d) for d in again] == [task_id_of(envelope)]
    assert again[0].deliveries == 2
    assert again[0].redelivered
    assert taken.tag != again[0].tag
    transport.ack(again)


def test_taskq_restores_what_kombu_took_and_abandoned(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    prefix: str,
    raw: redis.Redis,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    queue = "celery"
    with kombu_connection(global_keyprefix=prefix) as conn:
        bound = Queue(queue, Exchange("celery", "direct"), routing_key="celery")
        bound(conn.default_channel).declare()
        conn.Producer(serializer="json").publish(
            {"n": 1}, exchange="celery", routing_key="celery", headers={"id": "abandoned"}
        )
        message = conn.SimpleQueue(bound, no_ack=False).get(timeout=2)
        assert message.headers["id"] == "abandoned"
        # kombu's consumer holds it: unacked entry under kombu's own delivery tag.
        assert raw.hexists(f"{prefix}unacked", message.delivery_tag)
        channel: Any = conn.default_channel
        channel.qos._delivered.clear()  # it dies without restoring at shutdown

    transport = taskq(global_keyprefix=prefix, visibility_timeout=0.2)
    time.sleep(0.3)
    got = transport.fetch([queue], 1, 2.0)
    assert [d.envelope.headers["id"] for d in got] == ["abandoned"]
    assert got[0].deliveries == 2
    assert got[0].redelivered
    assert got[0].envelope.delivery_info["exchange"] == "celery"
    transport.ack(got)
    assert raw.hlen(f"{prefix}unacked") == 0
    assert raw.zcard(f"{prefix}unacked_index") == 0


def test_restore_waits_while_kombu_holds_the_mutex(
    taskq: Callable[..., RedisTransport],
    raw: redis.Redis,
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    holder = taskq(global_keyprefix=prefix, visibility_timeout=0.2)
    holder.publish("q", make_envelope("q"))
    assert holder.fetch(["q"], 1, 2.0)
    holder._unacked.take_all()  # pyright: ignore[reportPrivateUsage]
    raw.set(f"{prefix}unacked_mutex", "kombu-token", nx=True, ex=300)
    other = taskq(global_keyprefix=prefix, visibility_timeout=0.2)
    time.sleep(0.3)
    assert other.fetch(["q"], 1, 0.5) == []
    raw.delete(f"{prefix}unacked_mutex")
    got = other.fetch(["q"], 1, 3.0)
    assert len(got) == 1
    assert got[0].deliveries == 2


# -- fanout --------------------------------------------------------------------------------------


def test_kombu_broadcasts_reach_taskq_subscribers(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    unique_name: str,
) -> None:
    exchange = f"{unique_name}.pidbox"
    inbox: list[Envelope] = []
    transport = taskq()
    unsubscribe = transport.subscribe(exchange, inbox.append)
    with kombu_connection() as conn:
        producer = conn.Producer(serializer="json")
        fanout = Exchange(exchange, "fanout")
        producer.publish({"method": "ping"}, exchange=fanout, routing_key="", declare=[fanout])
        producer.publish({"type": "event"}, exchange=fanout, routing_key="worker.heartbeat")
    wait_until(lambda: len(inbox) == 2, 2.0, message="both broadcasts arrived")
    assert [e.body for e in inbox] == [b'{"method": "ping"}', b'{"type": "event"}']
    unsubscribe()


def test_taskq_broadcasts_reach_kombu_consumers(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    unique_name: str,
) -> None:
    exchange = f"{unique_name}.pidbox"
    received: list[Any] = []
    with kombu_connection() as conn:
        fanout = Exchange(exchange, "fanout")
        queue = Queue(f"{unique_name}.worker", fanout, auto_delete=True)
        with conn.Consumer(queue, callbacks=[lambda body, message: received.append(message)]):
            transport = taskq()
            envelope = make_envelope(exchange)
            envelope.properties["delivery_info"] = {"exchange": exchange, "routing_key": ""}
            # kombu subscribes when it first polls; send until it listens.
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                transport.broadcast(exchange, envelope)
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
    assert received, "kombu's consumer got nothing"
    assert received[0].body == envelope.body
    assert received[0].headers == envelope.headers


# -- global_keyprefix ----------------------------------------------------------------------------


def test_global_keyprefix_matches_kombus_keys(
    kombu_connection: Callable[..., Connection],
    taskq: Callable[..., RedisTransport],
    raw: redis.Redis,
    prefix: str,
    cleanup: Callable[[str], None],
) -> None:
    cleanup(prefix)
    transport = taskq(global_keyprefix=prefix)
    transport.publish("q", make_envelope("q", priority=3))
    assert raw.llen(f"{prefix}q{SEP}3") == 1
    with kombu_connection(global_keyprefix=prefix) as conn:
        simple = conn.SimpleQueue("q", no_ack=False)
        message = simple.get(timeout=2)
        # kombu's unacked entry sits under the same prefixed keys taskq uses.
        assert raw.hexists(f"{prefix}unacked", message.delivery_tag)
        message.ack()
        conn.Producer().publish({"n": 2}, routing_key="q")
        simple.close()
    assert raw.llen(f"{prefix}q") == 1
    [delivery] = transport.fetch(["q"], 1, 2.0)
    assert delivery.envelope.body == b'{"n": 2}'
    assert raw.hexists(f"{prefix}unacked", delivery.tag)
    transport.ack([delivery])


def test_control_broadcasts_use_celerys_pidbox_channel(
    taskq: Callable[..., RedisTransport], redis_url: str, unique_name: str
) -> None:
    """taskq's control requests for ``celery.pidbox`` go to ``/0.celery.pidbox`` on database
    0, where Celery workers listen (no routing key, so no ``/<routing key>`` suffix)."""
    from taskq.control import request_envelope

    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.psubscribe("/0.celery.pidbox")
    wait_until(lambda: listener.get_message(timeout=0.1), 2.0, message="subscribed")
    envelope = request_envelope("ping", {}, ticket=unique_name, reply_to=None)
    taskq().broadcast("celery.pidbox", envelope)

    def ours() -> bool:
        message = listener.get_message(timeout=0.1)
        return bool(message) and Envelope.decode(message["data"]).body == envelope.body

    wait_until(ours, 2.0, message="the broadcast on /0.celery.pidbox")
    listener.close()
