"""The kombu virtual-transport envelope: both directions, against kombu's own code."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from taskq_protocol import DecodeError, Envelope, MalformedMessage, TaskMessage, jsoncodec

# [live] celery 5.7.0 on Redis, from the reference (§1.6), trimmed to the keys that matter.
CELERY_ENVELOPE: dict[str, Any] = {
    "body": base64.b64encode(b'[[2, 2], {}, {"callbacks": null, "errbacks": null, '
                             b'"chain": null, "chord": null}]').decode(),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {"lang": "py", "task": "proj.add", "id": "b880fa48", "retries": 0,
                "timelimit": [None, None], "root_id": "b880fa48", "x-custom": 1},
    "properties": {"correlation_id": "b880fa48", "reply_to": "1e920a5f", "delivery_mode": 2,
                   "expiration": "60000", "delivery_info": {"exchange": "", "routing_key": "celery"},
                   "priority": 5, "body_encoding": "base64", "delivery_tag": "11c11914"},
}  # fmt: skip


def test_reads_celerys_envelope() -> None:
    env = Envelope.decode(json.dumps(CELERY_ENVELOPE).encode())
    assert env.body.startswith(b"[[2, 2]")
    assert (env.exchange, env.routing_key, env.priority) == ("", "celery", 5)
    assert env.delivery_tag == "11c11914"
    assert not env.redelivered
    msg = TaskMessage.decode(env.headers, env.properties, jsoncodec.loads(env.body))
    assert msg.args == [2, 2]


def test_round_trip_is_exact() -> None:
    env = Envelope.from_dict(CELERY_ENVELOPE)
    assert env.to_dict() == CELERY_ENVELOPE
    assert Envelope.decode(env.encode()) == env


def test_create_adds_kombus_bookkeeping() -> None:
    env = Envelope.create(b"[]", content_type="application/json", content_encoding="utf-8",
                          routing_key="celery")  # fmt: skip
    doc = env.to_dict()
    assert list(doc) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert doc["properties"]["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    assert doc["properties"]["body_encoding"] == "base64"
    assert doc["properties"]["priority"] == 0
    assert len(doc["properties"]["delivery_tag"]) == 36


def test_redelivered_flag_from_kombu_restore() -> None:
    doc = {**CELERY_ENVELOPE, "headers": {**CELERY_ENVELOPE["headers"], "redelivered": True}}
    assert Envelope.from_dict(doc).redelivered


def test_plain_text_body_without_body_encoding() -> None:
    doc = {**CELERY_ENVELOPE, "body": "[1]", "properties": {}}
    env = Envelope.from_dict(doc)
    assert env.body == b"[1]"
    assert env.to_dict()["body"] == "[1]"
    env.body = b"\xff"
    with pytest.raises(MalformedMessage, match="body_encoding"):
        env.to_dict()
    utf8 = Envelope.from_dict({**doc, "properties": {"body_encoding": "UTF-8"}})
    assert utf8.body == b"[1]"
    assert utf8.to_dict()["body"] == "[1]"


@pytest.mark.parametrize(
    ("data", "error", "field"),
    [
        (b"not json", DecodeError, "body"),
        (b"\xff\xfe", DecodeError, "body"),
        (b"[]", MalformedMessage, "envelope"),
        (b"{}", MalformedMessage, "envelope.body"),
        (b'{"body": "!!!", "properties": {"body_encoding": "base64"}}', DecodeError,
         "envelope.body"),
        (b'{"body": 5, "properties": {"body_encoding": "base64"}}', MalformedMessage,
         "envelope.body"),
        (b'{"body": "", "properties": {"body_encoding": "rot13"}}', MalformedMessage,
         "envelope.properties.body_encoding"),
        (b'{"body": "", "properties": []}', MalformedMessage, "envelope.properties"),
        (b'{"body": "", "headers": 1}', MalformedMessage, "envelope.headers"),
        (b'{"body": "", "properties": {"delivery_info": 3}}', MalformedMessage,
         "envelope.properties.delivery_info"),
        (b'{"body": "", "properties": {"priority": "high"}}', MalformedMessage,
         "envelope.properties.priority"),
        (b'{"body": "", "content-type": 1}', MalformedMessage, "envelope.content-type"),
    ],
)  # fmt: skip
def test_bad_envelopes_are_named(data: bytes, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as info:
        Envelope.decode(data)
    assert getattr(info.value, "field", None) == field


@pytest.mark.interop
def test_kombu_reads_taskqs_envelope(celery_app: Any, drain_memory_queues: Any) -> None:
    from kombu.transport.virtual.base import Message

    msg = TaskMessage.create("proj.add", (2, 3), headers={"x-trace": "abc"}, priority=4)
    headers, properties, body = msg.encode()
    env = Envelope.create(jsoncodec.dumps(body), content_type="application/json",
                          content_encoding="utf-8", headers=headers, properties=properties,
                          routing_key="celery", priority=4)  # fmt: skip
    with celery_app.connection_for_write() as conn:
        # What a Redis LPUSH stores is the JSON text; kombu parses it back with its own loads.
        from kombu.utils.json import loads

        kmsg = Message(payload=loads(env.encode()), channel=conn.default_channel)
        assert kmsg.decode() == [[2, 3], {}, {"callbacks": None, "errbacks": None,
                                               "chain": None, "chord": None}]  # fmt: skip
        assert kmsg.headers["task"] == "proj.add"
        assert kmsg.headers["x-trace"] == "abc"
        assert kmsg.delivery_info["routing_key"] == "celery"
        assert kmsg.delivery_tag == env.delivery_tag
        assert kmsg.properties["priority"] == 4
        assert kmsg.content_type == "application/json"


@pytest.mark.interop
def test_taskq_reads_kombus_envelope(celery_app: Any, drain_memory_queues: Any) -> None:
    add = celery_app.tasks["proj.add"]
    with celery_app.connection_for_write() as conn:
        sent = add.apply_async((2, 2), countdown=10, expires=60, priority=5, link=add.s(8),
                               headers={"x-custom": 1}, connection=conn)  # fmt: skip
    [(queue, doc)] = drain_memory_queues()
    assert queue == "celery"
    # A Redis broker stores the same document as JSON text.
    from kombu.utils.json import dumps

    env = Envelope.decode(dumps(doc).encode())
    msg = TaskMessage.decode(env.headers, env.properties, jsoncodec.loads(env.body))
    assert msg.id == sent.id
    assert msg.headers.extra == {"x-custom": 1}
    assert msg.embed.callbacks is not None
    assert msg.embed.callbacks[0].args == [8]
    assert env.priority == 5
    assert env.routing_key == "celery"
