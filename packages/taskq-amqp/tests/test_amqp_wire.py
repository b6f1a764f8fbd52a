"""The frames taskq_amqp encodes itself: the same bytes py-amqp (kombu's client) would send,
and messages that cross the running RabbitMQ intact, however large."""

from __future__ import annotations

import importlib
import struct
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import amqp  # pyright: ignore[reportMissingTypeStubs]
import pytest

from taskq.contracts import Delivery, QueueSpec
from taskq_amqp import wire
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope

PY_AMQP_SERIALIZATION: Any = importlib.import_module("amqp.serialization")

CELERY_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "proj.tasks.add",
    "id": "8c5b2a0e-1c1f-4c38-9d3b-6f1f6d1e5a01",
    "shadow": None,
    "eta": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "argsrepr": "(2, 2)",
    "ignore_result": True,
    "stamps": {},
    "x-taskq-properties": {"delivery_info": {"exchange": "", "routing_key": "celery"}},
}

ODD_VALUES: dict[str, Any] = {
    "big": 2**40,
    "negative": -(2**31) + 1,
    "smallest": -(2**31),
    "float": 1.5,
    "decimal": Decimal("12.345"),
    "when": datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc),
    "bytes": b"\x00\xff",
    "false": False,
    "unicode": "päivää ☃",
    "nested": {"list": [1, "two", [3.0, None], {"four": True}], "tuple": (1, 2)},
}


def _py_amqp_properties(properties: dict[str, Any]) -> bytes:
    message: Any = amqp.Message(**properties)
    encoded: bytes = message._serialize_properties()
    return encoded


@pytest.mark.parametrize(
    "properties",
    [
        {
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "application_headers": CELERY_HEADERS,
            "delivery_mode": 2,
            "priority": 0,
            "correlation_id": CELERY_HEADERS["id"],
            "reply_to": "a3f1c2d4-0000-5e5a-a710-f457a48500b1",
        },
        {"application_headers": ODD_VALUES, "expiration": "60000", "timestamp": 1_700_000_000},
        {"content_type": "", "message_id": "m", "type": "t", "user_id": "guest", "app_id": "a"},
        {},
    ],
    ids=["celery-task", "odd-header-values", "other-properties", "none"],
)
def test_properties_are_encoded_as_py_amqp_encodes_them(properties: dict[str, Any]) -> None:
    assert wire.encode_properties(properties) == _py_amqp_properties(properties)


@pytest.mark.parametrize(
    "properties",
    [
        {"application_headers": CELERY_HEADERS, "delivery_mode": 2, "correlation_id": "c"},
        {"application_headers": {k: v for k, v in ODD_VALUES.items() if k != "bytes"}},
        {"timestamp": 1_700_000_000, "cluster_id": "x", "priority": 9, "app_id": "a"},
    ],
    ids=["celery-task", "odd-header-values", "other-properties"],
)
def test_properties_are_decoded_as_py_amqp_decodes_them(properties: dict[str, Any]) -> None:
    header = struct.pack(">HHQ", 60, 0, 0) + wire.encode_properties(properties)
    decoded: tuple[dict[str, Any], int] = PY_AMQP_SERIALIZATION.decode_properties_basic(header, 12)
    assert wire.decode_properties(header) == decoded[0]


def test_a_header_value_amqp_cannot_carry_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="set"):
        wire.encode_properties({"application_headers": {"bad": {1, 2}}})
    with pytest.raises(ValueError, match="colour"):
        wire.encode_properties({"colour": "blue"})


def test_acks_below_the_lowest_unsettled_tag_become_one_multiple_ack() -> None:
    frames = wire.ack_frames(1, [3, 1, 2, 7], lowest_unsettled=5)
    methods = [frames[i + 7 : i + 7 + 13] for i in range(0, len(frames), 21)]
    decoded = [(int.from_bytes(m[4:12], "big"), m[12]) for m in methods]
    assert decoded == [(7, 0), (3, 1)]  # 7 alone (5 is still held), 1..3 at once
    assert wire.ack_frames(1, [4], lowest_unsettled=None).endswith(b"\x00\xce")


def test_bodies_larger_than_a_frame_cross_the_broker_intact(transport: AmqpTransport) -> None:
    """RabbitMQ's frame_max is 128 KiB: a 300 KiB body goes in three body frames, an empty
    body in none."""
    queue = f"taskq-test-wire-{uuid.uuid4().hex[:12]}"
    transport.declare_queue(QueueSpec(queue, routing_key=queue))
    bodies = [bytes(range(256)) * 1200, b"", b"x"]
    transport.publish_many([(queue, make_envelope(queue, body=body), None) for body in bodies])
    got: list[Delivery] = []
    while len(got) < 3:
        batch = transport.fetch([queue], 3 - len(got), 10.0)
        assert batch, "a message did not come back"
        got += batch
    assert [d.envelope.body for d in got] == bodies
    transport.ack(got)
    transport.delete_queue(queue)
