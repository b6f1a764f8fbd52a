"""``Publisher.send_many`` writing a group's members from the first member's message.

Calls of one task whose options differ only in ``task_id`` and ``group_index`` share the
first's route and headers; each must still go out exactly as :meth:`Publisher.send` would
write it on its own.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import TaskQ, group
from taskq.context import Request, pop_request, push_request
from taskq_protocol import Envelope, TaskMessage
from taskq_protocol.message import safe_repr

from .conftest import Take

#: What differs between two sends of one message: kombu's per-publish delivery tag, and the
#: milliseconds left until ``expires`` (compared apart).
_PER_PUBLISH = {"delivery_tag", "expiration"}


def _wire(message: TaskMessage, envelope: Envelope) -> dict[str, Any]:
    """What a worker reads of a message: everything but the delivery tag."""
    return {
        "expiration": int(envelope.properties.get("expiration", -1)),
        "headers": envelope.headers,
        "properties": {k: v for k, v in envelope.properties.items() if k not in _PER_PUBLISH},
        "content_type": envelope.content_type,
        "content_encoding": envelope.content_encoding,
        "body": (message.args, message.kwargs, message.embed.to_dict()),
    }


def _without(wire: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if k != key}


def _drain(app: TaskQ, take: Take, count: int, queue: str = "celery") -> list[dict[str, Any]]:
    return [_wire(*take(app, queue)) for _ in range(count)]


def _options() -> dict[str, Any]:
    """Options touching every part of a message (times from now: expires in an hour)."""
    now = datetime.now(timezone.utc)
    return {
        "group_id": "the-group",
        "reply_to": "the-client",
        "priority": 4,
        "headers": {"tenant": "acme"},
        "link": {"task": "after", "args": [], "kwargs": {}, "options": {}, "subtask_type": None},
        "expires": now + timedelta(hours=1),
        "eta": now - timedelta(seconds=1),
        "time_limit": 30,
        "stamps": {"colour": "blue"},
    }


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_each_member_goes_out_as_send_writes_it_alone(
    app: TaskQ, take: Take, serializer: str, compression: str | None
) -> None:
    @app.task(serializer=serializer, compression=compression)
    def add(x: int, y: int) -> int:
        return x + y

    options = _options()
    calls = [
        (add.name, (i, i), {"scale": i}, {**options, "task_id": f"id-{i}", "group_index": i})
        for i in range(5)
    ]
    ids = app.publisher.send_many(calls)
    batch = _drain(app, take, 5)
    for name, args, kwargs, options in calls:
        app.publisher.send(name, args, kwargs, options, task=add)
    alone = _drain(app, take, 5)

    assert ids == [f"id-{i}" for i in range(5)]
    assert [wire["expiration"] for wire in batch] == pytest.approx(
        [wire["expiration"] for wire in alone], abs=5_000
    )
    assert [_without(wire, "expiration") for wire in batch] == [
        _without(wire, "expiration") for wire in alone
    ]
    assert [wire["headers"]["group_index"] for wire in batch] == list(range(5))
    assert [wire["body"][0] for wire in batch] == [[i, i] for i in range(5)]
    assert [wire["headers"]["argsrepr"] for wire in batch] == [f"({i}, {i})" for i in range(5)]
    assert batch[0]["expiration"] > 3_500_000  # expires in an hour


def test_members_get_their_own_ids_and_roots(app: TaskQ, take: Take) -> None:
    calls = [("t", (), {}, {"group_id": "g", "group_index": i}) for i in range(3)]
    ids = app.publisher.send_many(calls)
    messages = [take(app) for _ in range(3)]

    assert len(set(ids)) == 3
    for task_id, (message, envelope) in zip(ids, messages, strict=True):
        assert message.id == task_id
        assert message.headers.root_id == task_id  # no parent: each is its own root
        assert envelope.properties["correlation_id"] == task_id
    assert len({envelope.properties["delivery_tag"] for _, envelope in messages}) == 3


def test_members_sent_from_a_task_share_its_root_and_parent(app: TaskQ, take: Take) -> None:
    push_request(Request(id="parent-id", task="x", root_id="root-id"))
    try:
        app.publisher.send_many([("t", (), {}, {"group_index": i}) for i in range(3)])
    finally:
        pop_request()
    for _ in range(3):
        message, _ = take(app)
        assert (message.headers.root_id, message.headers.parent_id) == ("root-id", "parent-id")


def test_a_group_of_clones_shares_their_arguments(app: TaskQ, take: Take) -> None:
    @app.task
    def echo(value: object) -> object:
        return value

    big = list(range(100))
    group(echo.s(big) for _ in range(3)).apply_async()
    for _ in range(3):
        message, envelope = take(app)
        assert message.args == [big]
        assert envelope.headers["argsrepr"] == safe_repr((big,))


def test_members_with_other_options_are_built_on_their_own(app: TaskQ, take: Take) -> None:
    calls = [
        ("t", (), {}, {"queue": "a"}),
        ("t", (), {}, {"queue": "b"}),
        ("u", (), {}, {"queue": "b"}),
        ("u", (), {}, {"queue": "b", "headers": {"x": 1}}),
    ]
    app.publisher.send_many(calls)
    seen = [take(app, "a")] + [take(app, "b") for _ in range(3)]
    assert [(m.name, e.routing_key, e.headers.get("x")) for m, e in seen] == [
        ("t", "a", None),
        ("t", "b", None),
        ("u", "b", None),
        ("u", "b", 1),
    ]


def test_a_router_function_routes_every_member_by_its_arguments(app: TaskQ, take: Take) -> None:
    def by_argument(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict[str, str]:
        return {"queue": f"q{args[0] % 2}"}

    app.conf.task_routes = (by_argument,)
    app.publisher.send_many([("t", (i,), {}, {"group_index": i}) for i in range(4)])
    evens = [take(app, "q0")[0].args for _ in range(2)]
    odds = [take(app, "q1")[0].args for _ in range(2)]
    assert (evens, odds) == ([[0], [2]], [[1], [3]])


class _Incomparable:
    """An option value whose ``==`` raises, as a numpy array's does."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value is ambiguous")

    __hash__ = object.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Incomparable, ())


def test_an_option_that_cannot_be_compared_is_not_shared(app: TaskQ, take: Take) -> None:
    calls = [("t", (i,), {}, {"headers": {"v": i}, "whatever": _Incomparable()}) for i in range(3)]
    app.publisher.send_many(calls)
    assert [take(app)[1].headers["v"] for _ in range(3)] == [0, 1, 2]


def test_members_envelopes_are_written_from_the_first_ones(
    app: TaskQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task
    def add(x: int, y: str) -> str:
        return f"{x}{y}"

    published: list[Envelope] = []
    publish_many = app.transport.publish_many

    def recording(items: Any) -> None:
        published.extend(envelope for _, envelope, _ in items)
        publish_many(items)

    monkeypatch.setattr(app.transport, "publish_many", recording)
    group(add.s(i, 'é"\n') for i in range(4)).apply_async()
    first, *members = published
    assert first.template is None
    for member in members:
        assert member.template is not None
        assert member.encode() == dataclasses.replace(member, template=None).encode()
