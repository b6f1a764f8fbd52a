"""taskq's control client and its reply queue, against a stand-in worker on memory:// and
sqlite:// (the real workers, Celery's and taskq's, answer it in taskq-worker's and
taskq-redis's tests).

The stand-in answers as any worker does: it hears the request on the pidbox fanout exchange
and sends ``{node: reply}`` through ``send_direct`` to the request's ``reply_to``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.control import reply_envelope, reply_queue
from taskq_protocol import Envelope, jsoncodec
from taskq_testing.waiting import wait_until


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskQ]:
    if request.param == "memory":
        broker = f"memory://control-{uuid.uuid4().hex}"
    else:
        broker = f"sqlite:///{tmp_path / 'broker.db'}"
    app = TaskQ("control-test", broker=broker, backend="memory://", set_as_current=False)
    yield app
    app.close()


Answer = Callable[[dict[str, Any], Envelope], list[tuple[str, str, Any]]]


def stand_in_worker(app: TaskQ, answer: Answer) -> Callable[[], None]:
    """Answer every request with the ``(node, ticket, reply)`` triples ``answer`` returns."""
    transport = app.transport

    def on_request(envelope: Envelope) -> None:
        request: dict[str, Any] = jsoncodec.loads(envelope.body)
        reply_to = request["reply_to"]
        if not reply_to:
            return
        for node, ticket, reply in answer(request, envelope):
            transport.send_direct(
                reply_to["exchange"],
                reply_to["routing_key"],
                reply_envelope(node, ticket, reply),
            )

    return transport.subscribe(app.control.exchange, on_request)


def test_replies_arrive_through_the_reply_queue(app: TaskQ) -> None:
    stop = stand_in_worker(
        app,
        lambda request, _: [
            ("one@host", request["ticket"], {"ok": "pong"}),
            ("two@host", request["ticket"], {"ok": "pong"}),
        ],
    )
    try:
        replies = app.control.broadcast("ping", reply=True, timeout=5.0, limit=2)
    finally:
        stop()
    assert sorted(replies, key=str) == [{"one@host": {"ok": "pong"}}, {"two@host": {"ok": "pong"}}]


def test_the_request_names_the_reply_queue_binding(app: TaskQ) -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: dict[str, Any], _: Envelope) -> list[tuple[str, str, Any]]:
        seen.append(request)
        return [("n@host", request["ticket"], {"ok": "pong"})]

    stop = stand_in_worker(app, answer)
    try:
        assert app.control.broadcast("ping", reply=True, timeout=5.0, limit=1)
    finally:
        stop()
    spec = reply_queue("celery", app.thread_oid)
    assert seen[0]["reply_to"] == {"exchange": "reply.celery.pidbox", "routing_key": app.thread_oid}
    assert spec.name == f"{app.thread_oid}.reply.celery.pidbox"
    assert spec.arguments["x-expires"] == 10_000


def test_replies_to_other_tickets_are_dropped(app: TaskQ) -> None:
    stop = stand_in_worker(
        app,
        lambda request, _: [
            ("stale@host", "an-earlier-ticket", {"ok": "late"}),
            ("fresh@host", request["ticket"], {"ok": "pong"}),
        ],
    )
    try:
        replies = app.control.broadcast("ping", reply=True, timeout=1.0)
    finally:
        stop()
    assert replies == [{"fresh@host": {"ok": "pong"}}]


def test_limit_stops_collecting(app: TaskQ) -> None:
    stop = stand_in_worker(
        app, lambda request, _: [(f"n{i}@host", request["ticket"], {"ok": i}) for i in range(3)]
    )
    try:
        replies = app.control.broadcast("ping", reply=True, timeout=30.0, limit=2)
    finally:
        stop()
    assert len(replies) == 2


def test_no_answer_is_an_empty_list(app: TaskQ) -> None:
    assert app.control.ping(timeout=0.2) == []


def test_the_reply_queue_is_deleted_after_the_call(app: TaskQ) -> None:
    stop = stand_in_worker(app, lambda request, _: [("n@host", request["ticket"], {})])
    try:
        assert app.control.broadcast("ping", reply=True, timeout=5.0, limit=1) == [{"n@host": {}}]
    finally:
        stop()
    spec = reply_queue("celery", app.thread_oid)
    late = reply_envelope("late@host", "t", {})
    assert app.transport.send_direct(spec.exchange, spec.routing_key, late) is False
    assert app.transport.queue_length(spec.name) == 0


def test_a_request_without_reply_declares_nothing(app: TaskQ) -> None:
    requests: list[dict[str, Any]] = []

    def record(envelope: Envelope) -> None:
        requests.append(jsoncodec.loads(envelope.body))

    unsubscribe = app.transport.subscribe(app.control.exchange, record)
    try:
        app.control.revoke("some-task-id")
        wait_until(lambda: requests, 10.0, message="the revoke request was broadcast")
    finally:
        unsubscribe()
    assert requests[0]["reply_to"] is None
    spec = reply_queue("celery", app.thread_oid)
    assert (
        app.transport.send_direct(spec.exchange, spec.routing_key, reply_envelope("n", "t", 1))
        is False
    )
