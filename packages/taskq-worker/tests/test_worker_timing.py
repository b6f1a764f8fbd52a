"""Time in the worker: rate limits, retries with countdown, expiry, ETAs, long tasks."""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskq import states
from taskq.exceptions import TaskRevokedError
from taskq_testing.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, make_envelope, memory_app


def _burst_time(rate: str | None, count: int, **settings: object) -> float:
    app = memory_app(**settings)
    done: list[float] = []

    @app.task(name="tests.tick", rate_limit=rate)
    def tick() -> None:
        done.append(time.monotonic())

    worker = RunningWorker(app, pool="threads", concurrency=4).start()
    try:
        results = [tick.delay() for _ in range(count)]
        for result in results:
            result.get(timeout=10)
    finally:
        worker.stop()
    return max(done) - min(done)


def test_rate_limit_spreads_a_burst() -> None:
    # 20/s and a bucket of one: the 6th task starts 5 x 50 ms after the first.
    assert _burst_time("20/s", 6) >= 0.24


def test_rate_limits_can_be_disabled() -> None:
    assert _burst_time("2/s", 6, worker_disable_rate_limits=True) < 1.0


def test_default_rate_limit_applies_to_tasks_without_one() -> None:
    assert _burst_time(None, 4, task_default_rate_limit="20/s") >= 0.14


def test_retry_with_countdown_waits_in_the_broker() -> None:
    app = memory_app()
    attempts: list[float] = []

    @app.task(name="tests.flaky", bind=True, max_retries=2)
    def flaky(self: object) -> int:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise flaky.retry(countdown=0.4)
        return len(attempts)

    worker = RunningWorker(app, pool="solo").start()
    try:
        result = flaky.delay()
        wait_until(lambda: result.state == states.RETRY, 5, message="RETRY stored")
        assert app.transport.queue_length("celery") == 1, "the retry waits in the broker"
        assert result.get(timeout=5) == 2
    finally:
        worker.stop()
    assert attempts[1] - attempts[0] >= 0.35


def test_expired_task_is_not_run() -> None:
    app = memory_app()
    ran: list[int] = []

    @app.task(name="tests.late")
    def late() -> None:
        ran.append(1)

    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    result = late.apply_async(expires=past)
    worker = RunningWorker(app, pool="solo").start()
    try:
        with pytest.raises(TaskRevokedError):
            result.get(timeout=5)
    finally:
        worker.stop()
    assert ran == []


def test_a_future_eta_goes_back_to_the_broker() -> None:
    """A message that arrives early (a Celery client on a broker that delivers ETA messages at
    once) is republished with its ETA and acked: the worker does not hold it."""
    app = memory_app()
    ran_at: list[float] = []

    @app.task(name="tests.when")
    def when() -> None:
        ran_at.append(time.time())

    eta = datetime.now(timezone.utc) + timedelta(seconds=1.2)
    envelope = make_envelope("tests.when", headers={"eta": eta.isoformat()})
    app.transport.publish("celery", envelope)  # no eta: visible at once
    worker = RunningWorker(app, pool="solo", hostname="eta@test").start()

    def held() -> int:
        [reply] = app.control.broadcast("stats", reply=True, timeout=2.0, limit=1)
        return int(reply["eta@test"]["held"])

    try:
        wait_until(lambda: app.transport.queue_length("celery"), 5, message="handed back")
        assert held() == 0
        assert not ran_at
        app.AsyncResult(envelope.headers["id"]).get(timeout=5)
    finally:
        worker.stop()
    assert ran_at[0] >= eta.timestamp() - 0.05


def test_a_long_task_outlives_the_visibility_timeout() -> None:
    app = memory_app(broker_transport_options={"visibility_timeout": 0.3})
    runs: list[int] = []
    release = threading.Event()

    @app.task(name="tests.long")
    def long() -> int:
        runs.append(1)
        release.wait(1.2)
        return len(runs)

    worker = RunningWorker(app, pool="threads", concurrency=2).start()
    try:
        assert long.delay().get(timeout=5) == 1
        time.sleep(0.4)
    finally:
        worker.stop()
    assert runs == [1], "extended while running, so never delivered twice"
