"""Per-message cost of the AMQP hot path: py-amqp (what taskq_amqp uses) against kombu.

Run from the repository root on an idle machine (it uses the RabbitMQ on localhost):

    uv run python packages/taskq-amqp/bench/hot_path.py [--messages 5000] [--url amqp://...]

Each row publishes or consumes the same Celery-sized message (a 200-byte JSON body and
Celery's headers) on a fresh queue: library calls only, then taskq's transport on top of
py-amqp. Prints microseconds per message (median of three runs). Not a test: speed is
measured here, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import amqp as _amqp  # pyright: ignore[reportMissingTypeStubs]
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer, Producer

from taskq.contracts import QueueSpec
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope

amqp: Any = _amqp  # untyped; its inferred types call bodies str

BODY = b'[[1, 2], {"x": "' + b"y" * 160 + b'"}, {"callbacks": null, "chain": null}]'
HEADERS: dict[str, Any] = {
    "lang": "py", "task": "bench.noop", "id": "0" * 36, "root_id": "0" * 36, "parent_id": None,
    "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
    "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "bench@host", "ignore_result": False,
}  # fmt: skip


def _queue(channel: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    channel.queue_declare(name, durable=True, auto_delete=False)
    return name


def pyamqp_publish(url: str, n: int, confirm: bool) -> float:
    conn: Any = amqp.Connection(host=url)
    conn.connect()
    ch = conn.channel()
    q = _queue(ch)
    publish = ch.basic_publish_confirm if confirm else ch.basic_publish
    started = time.perf_counter()
    for _ in range(n):
        msg = amqp.Message(BODY, content_type="application/json", content_encoding="utf-8",
                           application_headers=HEADERS, delivery_mode=2, priority=0)  # fmt: skip
        publish(msg, exchange="", routing_key=q)
    elapsed = time.perf_counter() - started
    ch.queue_delete(q)
    conn.close()
    return elapsed / n


def kombu_publish(url: str, n: int, confirm: bool) -> float:
    conn = Connection(f"amqp://guest:guest@{url}//", transport_options={"confirm_publish": confirm})
    channel: Any = conn.channel()
    q = _queue(channel)
    producer = Producer(channel)
    started = time.perf_counter()
    for _ in range(n):
        producer.publish(BODY, routing_key=q, headers=HEADERS, content_type="application/json",
                         content_encoding="utf-8", delivery_mode=2, priority=0)  # fmt: skip
    elapsed = time.perf_counter() - started
    channel.queue_delete(q)
    conn.release()
    return elapsed / n


def _fill(url: str, n: int) -> str:
    conn: Any = amqp.Connection(host=url)
    conn.connect()
    ch = conn.channel()
    q = _queue(ch)
    for _ in range(n):
        ch.basic_publish(amqp.Message(BODY, application_headers=HEADERS), routing_key=q)
    ch.basic_qos(0, 1, False)
    while ch.queue_declare(q, passive=True)[1] < n:
        time.sleep(0.01)
    conn.close()
    return q


def pyamqp_consume(url: str, n: int) -> float:
    q = _fill(url, n)
    conn: Any = amqp.Connection(host=url)
    conn.connect()
    ch = amqp.Channel(conn, auto_decode=False)
    ch.open()
    ch.basic_qos(0, 100, False)
    got = 0

    def on_message(message: Any) -> None:
        nonlocal got
        got += 1
        ch.basic_ack(message.delivery_tag)

    started = time.perf_counter()
    tag = ch.basic_consume(q, callback=on_message)
    while got < n:
        conn.drain_events(timeout=5)
    elapsed = time.perf_counter() - started
    ch.basic_cancel(tag)
    ch.queue_delete(q)
    conn.close()
    return elapsed / n


def kombu_consume(url: str, n: int) -> float:
    q = _fill(url, n)
    conn = Connection(f"amqp://guest:guest@{url}//")
    channel: Any = conn.channel()
    got = 0

    def on_message(message: Any) -> None:
        nonlocal got
        got += 1
        message.ack()

    consumer = Consumer(channel, [Queue(q, no_declare=True)], on_message=on_message,
                        prefetch_count=100)  # fmt: skip
    started = time.perf_counter()
    with consumer:
        while got < n:
            conn.drain_events(timeout=5)
    elapsed = time.perf_counter() - started
    channel.queue_delete(q)
    conn.release()
    return elapsed / n


def taskq_publish(url: str, n: int, batch: int, *, wait_each: bool = False) -> float:
    """Time until every message is confirmed: pipelined publishes include the final flush."""
    transport = AmqpTransport(f"amqp://guest:guest@{url}//", {"confirm_publish": wait_each})
    transport.connect()
    q = f"bench-{uuid.uuid4().hex[:10]}"
    transport.declare_queue(QueueSpec(q, routing_key=q))
    envelope = make_envelope(q)
    started = time.perf_counter()
    for _ in range(n // batch):
        if batch == 1:
            transport.publish(q, envelope)
        else:
            transport.publish_many([(q, envelope, None)] * batch)
    transport.flush()
    elapsed = time.perf_counter() - started
    transport.delete_queue(q)
    transport.close()
    return elapsed / n


def taskq_consume(url: str, n: int, limit: int) -> float:
    transport = AmqpTransport(f"amqp://guest:guest@{url}//", {})
    transport.connect()
    q = f"bench-{uuid.uuid4().hex[:10]}"
    transport.declare_queue(QueueSpec(q, routing_key=q))
    transport.publish_many([(q, make_envelope(q), None)] * n)
    got = 0
    started = time.perf_counter()
    while got < n:
        batch = transport.fetch([q], limit, 5.0)
        transport.ack(batch)
        got += len(batch)
    elapsed = time.perf_counter() - started
    transport.delete_queue(q)
    transport.close()
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description="AMQP hot path: py-amqp, kombu, taskq")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1:5672")
    args = parser.parse_args()
    n, host = args.messages, args.host
    rows: list[tuple[str, Callable[[], float]]] = [
        ("publish, no confirm   py-amqp", lambda: pyamqp_publish(host, n, False)),
        ("publish, no confirm   kombu", lambda: kombu_publish(host, n, False)),
        ("publish, confirm each py-amqp", lambda: pyamqp_publish(host, n // 5, True)),
        ("publish, confirm each kombu", lambda: kombu_publish(host, n // 5, True)),
        ("consume+ack (qos 100) py-amqp", lambda: pyamqp_consume(host, n)),
        ("consume+ack (qos 100) kombu", lambda: kombu_consume(host, n)),
        ("taskq publish (pipelined confirms)", lambda: taskq_publish(host, n, 1)),
        (
            "taskq publish (confirm_publish: wait each)",
            lambda: taskq_publish(host, n // 5, 1, wait_each=True),
        ),
        ("taskq publish_many (confirmed, 100)", lambda: taskq_publish(host, n, 100)),
        ("taskq fetch(limit=100)+ack", lambda: taskq_consume(host, n, 100)),
        ("taskq fetch(limit=1)+ack", lambda: taskq_consume(host, n // 5, 1)),
    ]
    print(f"{'path':44} {'us/message':>10}")
    for label, run in rows:
        median = statistics.median(run() for _ in range(3))
        print(f"{label:44} {median * 1e6:10.1f}")


if __name__ == "__main__":
    main()
