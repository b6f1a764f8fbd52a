"""A task never starts before its ETA, even one so near that the worker holds it itself.

The messages are published without a broker-side delay, as a Celery client does on AMQP: the
worker gets them at once, their ETA still ahead.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskq_protocol import Envelope, TaskMessage, jsoncodec, states
from taskq_testing.waiting import wait_until
from taskq_worker import consumer as consumer_module

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app


def _envelope(task: str, task_id: str, eta: datetime) -> Envelope:
    message = TaskMessage.create(task, [task_id], {}, id=task_id, eta=eta)
    headers, properties, payload = message.encode()
    return Envelope.create(
        jsoncodec.dumps(payload),
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties=properties,
        routing_key="celery",
    )


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_task_with_a_near_eta_starts_no_earlier(pool: str) -> None:
    app = memory_app()
    started: dict[str, float] = {}

    @app.task(name="tests.stamp")
    def stamp(key: str) -> None:
        started[key] = time.time()

    etas: dict[str, float] = {}
    worker = RunningWorker(app, pool=pool, concurrency=2).start()
    try:
        # Near ETAs (held by the worker) and one farther (sent back to the broker to wait).
        for seconds in (0.05, 0.3, 0.6, 0.9, 1.5):
            key = str(uuid.uuid4())
            eta = datetime.now(timezone.utc) + timedelta(seconds=seconds)
            etas[key] = eta.timestamp()
            app.transport.publish("celery", _envelope(stamp.name, key, eta))
        # One without an ETA runs at once, past the waiting ones.
        now_key = str(uuid.uuid4())
        stamp.delay(now_key)
        wait_until(lambda: len(started) == len(etas) + 1, 30, message="every task ran")
    finally:
        worker.stop()
    late = {key: (started[key], at) for key, at in etas.items() if started[key] < at}
    assert late == {}, f"started before their ETA (start, eta): {late}"


def test_a_held_task_can_be_revoked_before_its_eta() -> None:
    app = memory_app()
    ran: list[str] = []

    @app.task(name="tests.mark")
    def mark(key: str) -> None:
        ran.append(key)

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        held = str(uuid.uuid4())
        eta = datetime.now(timezone.utc) + timedelta(seconds=0.8)
        app.transport.publish("celery", _envelope(mark.name, held, eta))
        wait_until(lambda: app.transport.queue_length("celery") == 0, 10, message="fetched")
        app.control.revoke(held)
        result = app.AsyncResult(held)
        wait_until(lambda: result.state == states.REVOKED, 10, message="revoked while held")
        after = str(uuid.uuid4())
        mark.apply_async((after,), countdown=1.2)
        wait_until(lambda: after in ran, 30, message="a later task ran")
    finally:
        worker.stop()
    assert held not in ran


def test_a_held_task_is_scheduled_not_reserved_and_goes_back_at_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "ETA_HOLD", 60.0)  # hold it long enough to look
    app = memory_app()

    @app.task(name="tests.never")
    def never() -> None:
        raise AssertionError("ran before its ETA")

    running = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        key = str(uuid.uuid4())
        eta = datetime.now(timezone.utc) + timedelta(seconds=30)
        app.transport.publish("celery", _envelope(never.name, key, eta))
        consumer = running.worker._consumer  # pyright: ignore[reportPrivateUsage]
        assert consumer is not None
        wait_until(lambda: bool(consumer.scheduled()), 10, message="held by the worker")
        [(at, job)] = consumer.scheduled()
        assert (job.id, at) == (key, pytest.approx(eta.timestamp()))
        assert consumer.waiting() == []
        [scheduled] = app.control.broadcast("scheduled", reply=True, timeout=5.0, limit=1)
        [reserved] = app.control.broadcast("reserved", reply=True, timeout=5.0, limit=1)
    finally:
        running.stop()
    assert app.transport.queue_length("celery") == 1, "unacknowledged, back to the broker"
    # inspect scheduled answers as Celery's worker does; inspect reserved leaves it out.
    [(node, [entry])] = scheduled.items()
    assert datetime.fromisoformat(entry["eta"]).timestamp() == pytest.approx(eta.timestamp())
    assert entry["priority"] == 0
    assert entry["request"]["id"] == key
    assert reserved[node] == []
