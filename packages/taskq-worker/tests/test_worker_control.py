"""Remote control: ping, revoke (and terminate), rate limits, inspection, shutdown."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from taskq import TaskQ, states
from taskq.exceptions import TaskRevokedError
from taskq_testing.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app, sqlite_app


def _blocking_app(app: TaskQ) -> tuple[TaskQ, threading.Event, threading.Event]:
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold")
    def hold() -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not release.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)  # short steps: a threads pool interrupts between bytecodes
        return "released"

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app, started, release


def test_ping_answers_and_destination_filters() -> None:
    app = memory_app()
    worker = RunningWorker(app, pool="solo", hostname="alpha@test").start()
    try:
        pong = {"alpha@test": {"ok": "pong"}}
        assert app.control.broadcast("ping", reply=True, timeout=2.0, limit=1) == [pong]
        only_alpha = app.control.broadcast(
            "ping", destination=["alpha@test"], reply=True, timeout=2.0, limit=1
        )
        assert only_alpha == [pong]
        assert app.control.ping(destination=["beta@test"], timeout=0.3) == []
    finally:
        worker.stop()


def test_revoked_task_is_discarded_when_it_arrives() -> None:
    app, _, _ = _blocking_app(memory_app())
    ran: list[int] = []

    @app.task(name="tests.record")
    def record() -> None:
        ran.append(1)

    worker = RunningWorker(app, pool="solo").start()
    try:
        task_id = str(uuid.uuid4())
        app.control.revoke(task_id)
        result = record.apply_async(task_id=task_id)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=5)
        assert app.tasks["tests.add"].delay(1, 2).get(timeout=5) == 3
    finally:
        worker.stop()
    assert ran == []
    assert app.transport.queue_length("celery") == 0


def test_revoke_drops_a_waiting_task_at_once() -> None:
    app, started, release = _blocking_app(memory_app())
    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        first = app.tasks["tests.hold"].delay()
        assert started.wait(5)
        waiting = app.tasks["tests.add"].delay(1, 1)
        wait_until(lambda: app.transport.queue_length("celery") == 0, 5, message="prefetched")
        app.control.revoke(waiting.id)
        wait_until(lambda: waiting.state == states.REVOKED, 5, message="revoked while waiting")
        release.set()
        assert first.get(timeout=5) == "released"
    finally:
        release.set()
        worker.stop()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_terminate_stops_a_running_task(pool: str, tmp_path: Path) -> None:
    app = sqlite_app(tmp_path) if pool == "prefork" else memory_app()
    marker = tmp_path / "started"

    @app.task(name="tests.spin")
    def spin() -> str:
        marker.touch()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.005)
        return "finished"

    worker = RunningWorker(app, pool=pool, concurrency=1).start()
    try:
        result = spin.delay()
        wait_until(marker.exists, 5, message="task started")
        app.control.revoke(result.id, terminate=True, signal="SIGTERM")
        with pytest.raises(TaskRevokedError):
            result.get(timeout=5)
    finally:
        worker.stop()
    assert app.transport.queue_length("celery") == 0, "a terminated task is acknowledged"


def test_rate_limit_command() -> None:
    app, _, _ = _blocking_app(memory_app())
    worker = RunningWorker(app, pool="solo", hostname="rl@test").start()
    try:
        ok, unknown, bad = (
            app.control.broadcast(
                "rate_limit",
                {"task_name": name, "rate_limit": rate},
                reply=True,
                timeout=2.0,
                limit=1,
            )
            for name, rate in [("tests.add", "100/s"), ("tests.nope", "1/s"), ("tests.add", "x")]
        )
    finally:
        worker.stop()
    assert ok == [{"rl@test": {"ok": "new rate limit set successfully"}}]
    assert "unknown task" in unknown[0]["rl@test"]["error"]
    assert "10/s" in bad[0]["rl@test"]["error"]


def test_inspect_active_reserved_and_stats() -> None:
    app, started, release = _blocking_app(memory_app())
    worker = RunningWorker(app, pool="threads", concurrency=1, hostname="in@test").start()
    try:
        running = app.tasks["tests.hold"].delay()
        assert started.wait(5)
        waiting = app.tasks["tests.add"].delay(2, 2)
        wait_until(lambda: app.transport.queue_length("celery") == 0, 5, message="prefetched")
        [active] = app.control.broadcast("active", reply=True, timeout=2.0, limit=1)
        [reserved] = app.control.broadcast("reserved", reply=True, timeout=2.0, limit=1)
        [stats] = app.control.broadcast("stats", reply=True, timeout=2.0, limit=1)
        [queues] = app.control.broadcast("active_queues", reply=True, timeout=2.0, limit=1)
        [registered] = app.control.broadcast("registered", reply=True, timeout=2.0, limit=1)
        [unknown] = app.control.broadcast("frobnicate", reply=True, timeout=2.0, limit=1)
    finally:
        release.set()
        worker.stop()
    [job] = active["in@test"]
    assert job["id"] == running.id
    assert job["name"] == "tests.hold"
    assert job["time_start"]
    assert [j["id"] for j in reserved["in@test"]] == [waiting.id]
    assert stats["in@test"]["pool"]["implementation"] == "threads"
    assert stats["in@test"]["total"] == {"tests.hold": 1}
    assert queues["in@test"] == [{"name": "celery"}]
    names = registered["in@test"]
    assert names == sorted(names)
    assert {"tests.add", "tests.hold"} <= set(names)
    assert "No such control command" in unknown["in@test"]["error"]


def test_remote_shutdown_stops_the_worker() -> None:
    app = memory_app()
    worker = RunningWorker(app, pool="solo").start()
    app.control.shutdown()
    assert worker.join(5) == 0


def test_remote_control_can_be_disabled() -> None:
    app = memory_app(worker_enable_remote_control=False)
    worker = RunningWorker(app, pool="solo").start()
    try:
        assert app.control.ping(timeout=0.3) == []
    finally:
        worker.stop()


def test_revoke_takes_back_a_task_queued_in_a_prefork_child(tmp_path: Path) -> None:
    """The prefork pool holds several jobs per child; one not started is still dropped."""
    app = sqlite_app(tmp_path)
    marker, release, ran = tmp_path / "started", tmp_path / "release", tmp_path / "ran"

    @app.task(name="tests.hold_file")
    def hold_file() -> str:
        marker.touch()
        deadline = time.monotonic() + 10
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        return "released"

    @app.task(name="tests.mark")
    def mark() -> None:
        ran.touch()

    def given_to_the_pool(task_id: str) -> bool:
        replies = app.control.broadcast("active", reply=True, timeout=1.0, limit=1)
        return any(job["id"] == task_id for reply in replies for job in reply["q@test"])

    worker = RunningWorker(app, pool="prefork", concurrency=1, hostname="q@test").start()
    try:
        first = hold_file.delay()
        wait_until(marker.exists, 5, message="first task started")
        queued = mark.delay()
        wait_until(lambda: given_to_the_pool(queued.id), 5, message="sent to the child")
        app.control.revoke(queued.id)
        wait_until(lambda: queued.state == states.REVOKED, 5, message="revoked in the child")
        release.touch()
        assert first.get(timeout=5) == "released"
    finally:
        release.touch()
        worker.stop()
    assert not ran.exists()
    assert app.transport.queue_length("celery") == 0
