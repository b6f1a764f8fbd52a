"""The v2 task message model: decoding, encoding, defaults, v1/hybrid conversion, field errors."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq_protocol import Embed, MalformedMessage, Signature, TaskMessage

# Captured from celery 5.7.0: add.apply_async((2, 2), countdown=10, expires=60, priority=5,
# link=add.s(8), headers={"x-custom": 1}, time_limit=30, soft_time_limit=20).
CELERY_HEADERS: dict[str, Any] = {
    "lang": "py", "task": "proj.add", "id": "8274bc68-7444-4406-9056-95d59d16d03c",
    "shadow": None, "eta": "2026-11-24T04:57:09.881793+00:00",
    "expires": "2026-11-24T04:57:59.881793+00:00", "group": None, "group_index": None,
    "retries": 0, "timelimit": [30, 20], "root_id": "8274bc68-7444-4406-9056-95d59d16d03c",
    "parent_id": None, "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen8148@vm",
    "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    "x-custom": 1,
}  # fmt: skip
CELERY_PROPERTIES: dict[str, Any] = {
    "correlation_id": "8274bc68-7444-4406-9056-95d59d16d03c",
    "reply_to": "3602078f-2b25-33f9-88d0-72a648375d18",
    "delivery_mode": 2,
    "expiration": "60000",
    "priority": 5,
}
ADD_8 = {"task": "proj.add", "args": [8], "kwargs": {}, "options": {}, "subtask_type": None,
         "immutable": False}  # fmt: skip
CELERY_BODY: list[Any] = [
    [2, 2],
    {},
    {"callbacks": [ADD_8], "errbacks": None, "chain": None, "chord": None},
]


def test_decodes_every_header_celery_sends() -> None:
    msg = TaskMessage.decode(CELERY_HEADERS, CELERY_PROPERTIES, CELERY_BODY)
    h = msg.headers
    assert (msg.name, msg.id, msg.protocol) == ("proj.add", CELERY_HEADERS["id"], 2)
    assert h.eta == datetime(2026, 11, 24, 4, 57, 9, 881793, tzinfo=timezone.utc)
    assert h.expires is not None
    assert h.eta is not None
    assert h.expires - h.eta == timedelta(seconds=50)
    assert h.timelimit == (30, 20)  # [hard, soft]
    assert h.extra == {"x-custom": 1}
    assert msg.args == [2, 2]
    assert msg.kwargs == {}
    assert msg.embed.callbacks == [Signature("proj.add", [8])]
    assert msg.properties.priority == 5
    assert msg.properties.expiration == "60000"


def test_encode_reproduces_celerys_message_exactly() -> None:
    msg = TaskMessage.decode(CELERY_HEADERS, CELERY_PROPERTIES, CELERY_BODY)
    headers, properties, body = msg.encode()
    assert headers == CELERY_HEADERS
    assert list(headers) == list(CELERY_HEADERS)  # same key order as as_task_v2
    assert properties == CELERY_PROPERTIES
    assert body == CELERY_BODY


def test_decode_does_not_mutate_its_input() -> None:
    headers, body = copy.deepcopy(CELERY_HEADERS), copy.deepcopy(CELERY_BODY)
    TaskMessage.decode(headers, CELERY_PROPERTIES, body)
    assert headers == CELERY_HEADERS
    assert body == CELERY_BODY


def test_minimal_foreign_message_gets_defaults() -> None:
    msg = TaskMessage.decode({"lang": "go", "task": "t", "id": "1"}, {}, [[], {}, {}])
    assert msg.headers.retries == 0
    assert msg.headers.timelimit == (None, None)
    assert msg.embed == Embed()
    assert msg.properties.delivery_mode is None


def test_create_fills_in_what_celery_fills_in() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    msg = TaskMessage.create(
        "proj.add", (1, 2), {"z": 3}, expires=now + timedelta(seconds=60), now=now,
        time_limit=30, soft_time_limit=20, reply_to="oid", priority=3,
    )  # fmt: skip
    headers, properties, body = msg.encode()
    assert headers["root_id"] == headers["id"] == properties["correlation_id"]
    assert headers["argsrepr"] == "(1, 2)"
    assert headers["kwargsrepr"] == "{'z': 3}"
    assert headers["origin"].startswith("gen")
    assert "@" in headers["origin"]
    assert headers["timelimit"] == [30, 20]
    assert headers["expires"] == "2026-01-01T00:01:00+00:00"
    assert properties["expiration"] == "60000"
    assert properties["reply_to"] == "oid"
    assert body == [[1, 2], {"z": 3}, {"callbacks": None, "errbacks": None, "chain": None,
                                       "chord": None}]  # fmt: skip


def test_create_clamps_a_past_expiry_to_zero() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    msg = TaskMessage.create("t", expires=now - timedelta(seconds=5), now=now)
    assert msg.properties.expiration == "0"


def test_stamps_become_stamped_headers() -> None:
    msg = TaskMessage.create("t", stamps={"on": "x"})
    headers, _, _ = msg.encode()
    assert headers["stamped_headers"] == ["on"]
    assert headers["stamps"] == {"on": "x"}


def test_safe_repr_survives_a_broken_repr_and_is_bounded() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    msg = TaskMessage.create("t", (Broken(), "x" * 5000))
    assert msg.headers.argsrepr is not None
    assert "Broken" in msg.headers.argsrepr
    assert len(msg.headers.argsrepr) <= 1024


def test_chain_is_kept_in_wire_order_next_step_last() -> None:
    step3 = {**ADD_8, "args": [4], "options": {"task_id": "c"}}
    step2 = {**ADD_8, "args": [3], "options": {"task_id": "b"}}
    body = [[1, 2], {}, {"callbacks": None, "errbacks": None, "chain": [step3, step2],
                         "chord": None}]  # fmt: skip
    msg = TaskMessage.decode({"task": "proj.add", "id": "a"}, {}, body)
    assert msg.embed.chain is not None
    assert [s.task_id for s in msg.embed.chain] == ["c", "b"]
    assert msg.encode()[2] == body


def test_nested_canvas_signatures_round_trip() -> None:
    header = [{**ADD_8, "args": [1, 1]}, {**ADD_8, "args": [2, 2]}]
    chord = {"task": "celery.chord", "args": [], "kwargs": {"kwargs": {}, "header": header,
             "body": ADD_8}, "options": {}, "subtask_type": "chord", "immutable": False}  # fmt: skip
    group = {"task": "celery.group", "args": [], "kwargs": {"tasks": [ADD_8, chord]},
             "options": {"link_error": [ADD_8], "link": ADD_8}, "subtask_type": "group",
             "immutable": False, "chord_size": 2}  # fmt: skip
    sig = Signature.from_dict(group)
    assert sig.extra == {"chord_size": 2}
    assert [c.task for c in sig.children()] == ["proj.add", "celery.chord"]
    assert [c.task for c in sig.children()[1].children()] == ["proj.add"] * 3
    assert sig.to_dict() == group


def test_v1_message_is_converted() -> None:
    body = {
        "task": "proj.add", "id": "v1id", "args": [1, 2], "kwargs": {}, "retries": 1,
        "eta": "2026-01-01T00:00:00", "expires": None, "utc": True, "callbacks": [ADD_8],
        "errbacks": None, "timelimit": [10, 5], "taskset": "g1", "chord": None,
    }  # fmt: skip
    msg = TaskMessage.decode({}, {"correlation_id": "v1id"}, body)
    assert msg.protocol == 1
    assert (msg.name, msg.id, msg.headers.retries) == ("proj.add", "v1id", 1)
    assert msg.headers.group == "g1"
    assert msg.headers.eta == datetime(2026, 1, 1, tzinfo=timezone.utc)  # utc=True
    assert msg.headers.timelimit == (10, 5)
    assert msg.headers.argsrepr == "(1, 2)"
    assert msg.embed.callbacks == [Signature("proj.add", [8])]


def test_v1_local_time_stays_naive() -> None:
    body = {"task": "t", "id": "1", "args": [], "kwargs": {}, "eta": "2026-01-01T00:00:00",
            "utc": False}  # fmt: skip
    assert TaskMessage.decode({}, {}, body).headers.eta == datetime(2026, 1, 1)


def test_hybrid_message_headers_win_over_body() -> None:
    body = {"task": "old.name", "id": "1", "args": [5], "kwargs": {"k": 1}, "retries": 0}
    msg = TaskMessage.decode({"task": "new.name", "id": "1", "retries": 2}, {}, body)
    assert msg.protocol == 1
    assert msg.name == "new.name"
    assert msg.headers.retries == 2
    assert (msg.args, msg.kwargs) == ([5], {"k": 1})


def test_z_suffix_timestamps_are_read() -> None:
    msg = TaskMessage.decode({"task": "t", "id": "1", "eta": "2026-01-01T00:00:00Z"}, {},
                             [[], {}, None])  # fmt: skip
    assert msg.headers.eta == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("headers", "properties", "body", "field"),
    [
        ({"id": "1"}, {}, [[], {}, {}], "headers.task"),
        ({"task": "t"}, {}, [[], {}, {}], "headers.id"),
        ({"task": "", "id": "1"}, {}, [[], {}, {}], "headers.task"),
        ({"task": 5, "id": "1"}, {}, [[], {}, {}], "headers.task"),
        ({"task": "t", "id": "1"}, {}, [[], {}], "body"),
        ({"task": "t", "id": "1"}, {}, "nope", "body"),
        ({"task": "t", "id": "1"}, {}, [{}, {}, {}], "body[0]"),
        ({"task": "t", "id": "1"}, {}, [[], [], {}], "body[1]"),
        ({"task": "t", "id": "1"}, {}, [[], {}, []], "body[2]"),
        ({"task": "t", "id": "1"}, {}, [[], {}, {"chain": [{"args": []}]}], "body[2].chain[0].task"),
        ({"task": "t", "id": "1"}, {}, [[], {}, {"chord": {"task": "x", "kwargs": 3}}],
         "body[2].chord.kwargs"),
        ({"task": "t", "id": "1", "timelimit": [1]}, {}, [[], {}, {}], "headers.timelimit"),
        ({"task": "t", "id": "1", "timelimit": ["1", None]}, {}, [[], {}, {}],
         "headers.timelimit[0]"),
        ({"task": "t", "id": "1", "timelimit": [-1, None]}, {}, [[], {}, {}],
         "headers.timelimit[0]"),
        ({"task": "t", "id": "1", "eta": "tomorrow"}, {}, [[], {}, {}], "headers.eta"),
        ({"task": "t", "id": "1", "retries": -1}, {}, [[], {}, {}], "headers.retries"),
        ({"task": "t", "id": "1", "retries": True}, {}, [[], {}, {}], "headers.retries"),
        ({"task": "t", "id": "1", "group_index": "0"}, {}, [[], {}, {}], "headers.group_index"),
        ({"task": "t", "id": "1", "stamps": []}, {}, [[], {}, {}], "headers.stamps"),
        ({"task": "t", "id": "1", "ignore_result": "yes"}, {}, [[], {}, {}],
         "headers.ignore_result"),
        ({"task": "t", "id": "1"}, {"priority": 1000}, [[], {}, {}], "properties.priority"),
        ({"task": "t", "id": "1"}, {"reply_to": 1}, [[], {}, {}], "properties.reply_to"),
        ({}, {}, {"id": "1", "args": []}, "body.task"),
        ({}, {}, {"task": "t", "id": "1"}, "body.args"),
        ({}, {}, {"task": "t", "id": "1", "args": {}}, "body.args"),
    ],
)  # fmt: skip
def test_malformed_messages_name_the_field(
    headers: dict[str, Any], properties: dict[str, Any], body: object, field: str
) -> None:
    with pytest.raises(MalformedMessage) as info:
        TaskMessage.decode(headers, properties, body)
    assert info.value.field == field
    assert field in str(info.value)


def test_absurdly_deep_signatures_are_refused() -> None:
    sig: dict[str, Any] = {"task": "leaf"}
    for _ in range(200):
        sig = {"task": "celery.chain", "subtask_type": "chain", "kwargs": {"tasks": [sig]}}
    with pytest.raises(MalformedMessage, match="nested deeper"):
        Signature.from_dict(sig)
