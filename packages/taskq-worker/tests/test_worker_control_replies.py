"""Where a worker sends its control replies: the request's ``reply_to``, as Celery's worker
does, whatever client asked (taskq-redis's interop tests do it with Celery's own client)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from taskq.contracts import QueueSpec
from taskq.control import request_envelope
from taskq_protocol import jsoncodec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app


def _ask(app: Any, reply_to: object, ticket: str, method: str = "ping") -> None:
    envelope = request_envelope(method, {}, ticket=ticket, reply_to=None)
    body: dict[str, Any] = jsoncodec.loads(envelope.body)
    body["reply_to"] = reply_to
    envelope.body = jsoncodec.dumps(body)
    app.transport.broadcast(app.control.exchange, envelope)


def test_reply_goes_to_the_queue_bound_to_reply_to() -> None:
    app = memory_app()
    worker = RunningWorker(app, pool="solo", hostname="alpha@test").start()
    try:
        oid = str(uuid.uuid4())
        queue = f"{oid}.reply.other.pidbox"
        app.transport.declare_queue(
            QueueSpec(name=queue, exchange="reply.other.pidbox", routing_key=oid)
        )
        _ask(app, {"exchange": "reply.other.pidbox", "routing_key": oid}, "ticket-1")
        [delivery] = app.transport.fetch([queue], 10, 10.0)
        envelope = delivery.envelope
        assert jsoncodec.loads(envelope.body) == {"alpha@test": {"ok": "pong"}}
        assert envelope.headers["ticket"] == "ticket-1"
        assert envelope.exchange == "reply.other.pidbox"
        assert envelope.routing_key == oid
        assert envelope.content_type == "application/json"
    finally:
        worker.stop()


def test_reply_to_the_anonymous_exchange_goes_to_the_named_queue() -> None:
    app = memory_app()
    worker = RunningWorker(app, pool="solo", hostname="alpha@test").start()
    try:
        queue = f"replies-{uuid.uuid4().hex}"
        _ask(app, {"exchange": "", "routing_key": queue}, "ticket-2")
        [delivery] = app.transport.fetch([queue], 10, 10.0)
        assert jsoncodec.loads(delivery.envelope.body) == {"alpha@test": {"ok": "pong"}}
    finally:
        worker.stop()


def test_unusable_reply_to_is_ignored_and_the_worker_carries_on() -> None:
    app = memory_app()
    worker = RunningWorker(app, pool="solo", hostname="alpha@test").start()
    try:
        _ask(app, "not-a-mapping", "t")
        _ask(app, {"exchange": "reply.celery.pidbox"}, "t")  # no routing key
        _ask(app, {"exchange": "reply.celery.pidbox", "routing_key": "nobody"}, "t")  # unbound
        replies = app.control.broadcast("ping", reply=True, timeout=10.0, limit=1)
        assert replies == [{"alpha@test": {"ok": "pong"}}]
    finally:
        worker.stop()
