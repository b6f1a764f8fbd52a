"""Encode + decode of one typical task message: taskq beside kombu, same message, same process.

What each side does per message is what it does on a virtual transport (Redis, SQS):

- encode: build the protocol v2 headers and body, serialize the body, wrap it in kombu's JSON
  envelope with a base64 body, and write the envelope as bytes.
- decode: parse the envelope, base64-decode and deserialize the body (checking
  ``accept_content``). taskq also builds its typed, validated ``TaskMessage``. kombu stops at
  the deserialized body, so taskq does more work here.

Run: ``uv run python tools/bench codec`` (``--quick`` for a short run).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from kombu import serialization as kombu_serialization
from kombu.connection import Connection
from kombu.utils.json import dumps as kombu_json_dumps
from kombu.utils.json import loads as kombu_json_loads

from taskq_protocol import Embed, Envelope, Signature, TaskMessage
from taskq_serializers import registry as taskq_registry  # the default SerializerRegistry

TASK = "shop.tasks.process_order"
ARGS = (48213, "ada@example.com")
KWARGS: dict[str, Any] = {
    "items": [
        {"sku": "A-1001", "qty": 2, "price": 9.99},
        {"sku": "B-2002", "qty": 1, "price": 24.5},
        {"sku": "C-3003", "qty": 5, "price": 1.25},
    ],
    "coupon": None,
    "express": True,
}
CALLBACK = {"task": "shop.tasks.notify", "args": [], "kwargs": {}, "options": {},
            "subtask_type": None, "immutable": False}  # fmt: skip


def _taskq_encode(serializer: str) -> Callable[[], bytes]:
    registry = taskq_registry
    link = Signature.from_dict(CALLBACK)

    def encode() -> bytes:
        msg = TaskMessage.create(TASK, ARGS, KWARGS, embed=Embed(callbacks=[link]),
                                 reply_to="c0ffee")  # fmt: skip
        headers, properties, body = msg.encode()
        content_type, content_encoding, payload = registry.dumps(body, serializer)
        return Envelope.create(payload, content_type=content_type,
                               content_encoding=content_encoding, headers=headers,
                               properties=properties, routing_key="celery").encode()  # fmt: skip

    return encode


def _taskq_decode(accept: list[str]) -> Callable[[bytes], object]:
    registry = taskq_registry
    allowed = registry.accept_content_types(accept)  # once, as a worker does at start

    def decode(raw: bytes) -> object:
        env = Envelope.decode(raw)
        body = registry.loads(env.body, env.content_type, env.content_encoding, accept=allowed)
        return TaskMessage.decode(env.headers, env.properties, body)

    return decode


def _kombu_encode(serializer: str) -> Callable[[], bytes]:
    import celery

    app = celery.Celery("bench", broker="memory://", set_as_current=False)
    channel = Connection("memory://").default_channel
    as_task_v2 = app.amqp.as_task_v2

    def encode() -> bytes:
        import uuid

        task_id = str(uuid.uuid4())
        message = as_task_v2(task_id, TASK, ARGS, KWARGS, callbacks=[CALLBACK],
                             reply_to="c0ffee")  # fmt: skip
        content_type, content_encoding, payload = kombu_serialization.dumps(
            message.body, serializer
        )
        prepared = channel.prepare_message(
            payload, 0, content_type, content_encoding, message.headers,
            dict(message.properties),
        )  # fmt: skip
        channel._inplace_augment_message(prepared, "", "celery")
        return kombu_json_dumps(prepared).encode()

    return encode


def _kombu_decode(accept: list[str]) -> Callable[[bytes], object]:
    channel = Connection("memory://").default_channel

    def decode(raw: bytes) -> object:
        message = channel.Message(kombu_json_loads(raw), channel=channel)
        message.accept = kombu_serialization.prepare_accept_content(accept)
        return message.decode()

    return decode


def _per_second(fn: Callable[[], object], seconds: float) -> float:
    """Best of five rounds of ``seconds / 5`` each, in calls per second."""
    rounds: list[float] = []
    for _ in range(5):
        calls, start, deadline = 0, time.perf_counter(), time.perf_counter() + seconds / 5
        while True:
            for _ in range(200):
                fn()
            calls += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        rounds.append(calls / (now - start))
    return max(rounds)


def _measure(serializer: str, seconds: float) -> list[dict[str, Any]]:
    accept = [serializer]
    t_enc, k_enc = _taskq_encode(serializer), _kombu_encode(serializer)
    t_dec, k_dec = _taskq_decode(accept), _kombu_decode(accept)
    t_raw, k_raw = t_enc(), k_enc()
    # Each side must read the other's bytes, or the comparison means nothing.
    k_dec(t_raw)
    t_dec(k_raw)
    stages: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("encode", t_enc, k_enc),
        ("decode", lambda: t_dec(t_raw), lambda: k_dec(k_raw)),
        ("encode+decode", lambda: t_dec(t_enc()), lambda: k_dec(k_enc())),
    ]
    rows: list[dict[str, Any]] = []
    for stage, taskq_fn, kombu_fn in stages:
        taskq_rate = _per_second(taskq_fn, seconds)
        kombu_rate = _per_second(kombu_fn, seconds)
        rows.append({
            "serializer": serializer, "stage": stage, "taskq": taskq_rate, "kombu": kombu_rate,
            "ratio": taskq_rate / kombu_rate, "bytes_taskq": len(t_raw), "bytes_kombu": len(k_raw),
        })  # fmt: skip
    return rows


def run(seconds: float = 5.0) -> list[dict[str, Any]]:
    return [row for serializer in ("json", "msgpack") for row in _measure(serializer, seconds)]


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'serializer':<10} {'stage':<14} {'taskq msg/s':>12} {'kombu msg/s':>12} "
        f"{'taskq/kombu':>11}",
    ]
    for row in rows:
        lines.append(
            f"{row['serializer']:<10} {row['stage']:<14} {row['taskq']:>12,.0f} "
            f"{row['kombu']:>12,.0f} {row['ratio']:>10.2f}x"
        )
    sizes = {r["serializer"]: (r["bytes_taskq"], r["bytes_kombu"]) for r in rows}
    for serializer, (ours, theirs) in sizes.items():
        lines.append(f"envelope bytes, {serializer}: taskq {ours}, kombu {theirs}")
    mean = statistics.geometric_mean(r["ratio"] for r in rows)
    lines.append(f"geometric mean of taskq/kombu: {mean:.2f}x")
    return "\n".join(lines)
