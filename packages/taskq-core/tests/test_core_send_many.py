"""``Publisher.send_many``: several calls built like ``send`` and published in one transport call."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from taskq import TaskQ, signals
from taskq.contracts import TransportError
from taskq.transports.memory import MemoryTransport
from taskq_protocol import Envelope


class CountingTransport(MemoryTransport):
    """The real in-memory broker, counting publish calls and failing the first ``failures``."""

    def __init__(self, url: str, failures: int = 0) -> None:
        super().__init__(url, {})
        self.failures = failures
        self.calls: list[str] = []

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        self.calls.append("publish")
        super().publish(queue, envelope, eta=eta)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        self.calls.append(f"publish_many({len(items)})")
        if self.failures:
            self.failures -= 1
            raise TransportError("broker away")
        super().publish_many(items)


def counting(app: TaskQ, failures: int = 0) -> CountingTransport:
    transport = CountingTransport(app.broker_url, failures)
    app._transport = transport  # pyright: ignore[reportPrivateUsage]
    return transport


def test_each_call_is_built_like_send_and_published_in_one_call(app: TaskQ, take: Any) -> None:
    @app.task(serializer="msgpack", compression="zlib", time_limit=30)
    def add(x: int, y: int) -> int:
        return x + y

    app.conf.task_routes = {"reports.*": {"queue": "slow"}}
    transport = counting(app)
    items: list[tuple[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]]] = [
        (add.name, (1, 2), {}, {}),
        ("reports.monthly", (), {"month": 5}, {"priority": 3}),
        (add.name, (3, 4), {}, {"task_id": "chosen-id", "serializer": "json"}),
    ]
    ids = app.publisher.send_many(items)

    assert transport.calls == ["publish_many(3)"]
    assert ids[2] == "chosen-id"
    first, envelope = take(app)
    assert (first.id, first.name, first.args) == (ids[0], add.name, [1, 2])
    assert envelope.content_type == "application/x-msgpack"  # the task's serializer
    assert envelope.headers["compression"] == "application/x-gzip"
    assert first.headers.timelimit == (30, None)
    third, envelope = take(app)
    assert (third.id, third.name, third.args) == ("chosen-id", add.name, [3, 4])
    assert envelope.content_type == "application/json"  # the call's option wins
    report, envelope = take(app, "slow")
    assert (report.id, report.name, report.kwargs) == (ids[1], "reports.monthly", {"month": 5})
    assert envelope.routing_key == "slow"
    assert envelope.priority == 3


def test_signals_fire_for_every_message_around_the_publish(app: TaskQ) -> None:
    seen: list[tuple[str, str, int]] = []

    def before(sender: str, headers: Mapping[str, Any], **_: Any) -> None:
        seen.append(("before", headers["id"], app.transport.queue_length("celery")))

    def after(sender: str, headers: Mapping[str, Any], **_: Any) -> None:
        seen.append(("after", headers["id"], app.transport.queue_length("celery")))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        one, two = app.publisher.send_many([("a", (), {}, {}), ("b", (), {}, {})])
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    # Every "before" runs before anything is on the queue; every "after" once all are.
    assert seen == [
        ("before", one, 0),
        ("before", two, 0),
        ("after", one, 2),
        ("after", two, 2),
    ]


def test_a_countdown_keeps_that_message_in_the_broker(app: TaskQ, take: Any) -> None:
    now, _ = app.publisher.send_many([("t", (1,), {}, {}), ("t", (2,), {}, {"countdown": 60})])
    message, _ = take(app)
    assert message.id == now
    assert app.transport.fetch(["celery"], 10, 0.05) == []  # the other waits for its eta
    assert app.transport.queue_length("celery") == 1


def test_a_failed_publish_is_retried_with_the_policy(app: TaskQ) -> None:
    app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0}
    transport = counting(app, failures=2)
    app.publisher.send_many([("t", (), {}, {}), ("t", (), {}, {})])
    assert transport.calls == ["publish_many(2)"] * 3
    assert app.transport.queue_length("celery") == 2


def test_without_retry_the_first_failure_is_raised(app: TaskQ) -> None:
    transport = counting(app, failures=1)
    with pytest.raises(TransportError, match="broker away"):
        app.publisher.send_many([("t", (), {}, {"retry": False}), ("t", (), {}, {})])
    assert transport.calls == ["publish_many(2)"]
    assert app.transport.queue_length("celery") == 0


def test_nothing_to_send_publishes_nothing(app: TaskQ) -> None:
    transport = counting(app)
    assert app.publisher.send_many([]) == []
    assert transport.calls == []


class UnreachableAtFirst(MemoryTransport):
    """A broker that refuses the first ``refusals`` connections (shared by every instance)."""

    refusals = 0
    connects = 0

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url.replace("unreachable-at-first://", "memory://"), options)

    def connect(self) -> None:
        UnreachableAtFirst.connects += 1
        if UnreachableAtFirst.connects <= UnreachableAtFirst.refusals:
            raise TransportError("connection refused")
        super().connect()


@pytest.fixture
def unreachable_at_first() -> type[UnreachableAtFirst]:
    from taskq import plugins

    UnreachableAtFirst.refusals, UnreachableAtFirst.connects = 2, 0
    plugins.TRANSPORTS.register("unreachable-at-first", UnreachableAtFirst)
    return UnreachableAtFirst


def test_the_first_connection_is_retried_with_the_publish_policy(
    unreachable_at_first: type[UnreachableAtFirst],
) -> None:
    """Regression: the connection was made before the retry loop, so a client whose first
    publish found the broker down failed at once, whatever its retry policy said."""
    app = TaskQ("tests", broker=f"unreachable-at-first://{uuid.uuid4().hex}", set_as_current=False)
    try:
        app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0}
        app.send_task("t")
        app.publisher.send_many([("t", (), {}, {})])
        assert unreachable_at_first.connects == 3
        assert app.transport.queue_length("celery") == 2
    finally:
        app.close()


def test_without_retry_a_refused_first_connection_is_raised(
    unreachable_at_first: type[UnreachableAtFirst],
) -> None:
    app = TaskQ("tests", broker=f"unreachable-at-first://{uuid.uuid4().hex}", set_as_current=False)
    try:
        with pytest.raises(TransportError, match="connection refused"):
            app.send_task("t", retry=False)
        assert unreachable_at_first.connects == 1
    finally:
        app.close()
