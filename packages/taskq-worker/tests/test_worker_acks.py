"""When a worker acknowledges, requeues or dead-letters a message, per task outcome."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from taskq import states
from taskq.contracts import DEAD_LETTER_REASON_HEADER
from taskq.exceptions import Reject, WorkerLostError
from taskq_testing.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, dead_letters, memory_app, sqlite_app


@pytest.mark.parametrize(("acks_late", "left"), [(True, 1), (False, 0)])
def test_ack_timing_shows_after_a_cold_shutdown(acks_late: bool, left: int) -> None:
    """A cold shutdown abandons the running task: its message comes back only if it was not
    acknowledged before the task ran."""
    app = memory_app(task_acks_late=acks_late)
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold")
    def hold() -> None:
        started.set()
        release.wait(10)

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        hold.delay()
        assert started.wait(5)
        assert worker.stop(cold=True) == 1
    finally:
        release.set()
    assert app.transport.queue_length("celery") == left


def test_task_option_overrides_the_setting() -> None:
    app = memory_app(task_acks_late=True)
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold", acks_late=False)
    def hold() -> None:
        started.set()
        release.wait(10)

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        hold.delay()
        assert started.wait(5)
        worker.stop(cold=True)
    finally:
        release.set()
    assert app.transport.queue_length("celery") == 0


def test_reject_with_requeue_runs_the_task_again() -> None:
    app = memory_app()
    runs: list[int] = []

    @app.task(name="tests.flaky", bind=True)
    def flaky(self: object) -> int:
        runs.append(1)
        if len(runs) == 1:
            raise Reject("not yet", requeue=True)
        return len(runs)

    worker = RunningWorker(app, pool="solo").start()
    try:
        assert flaky.delay().get(timeout=5) == 2
    finally:
        worker.stop()


def test_reject_without_requeue_dead_letters_with_the_reason() -> None:
    app = memory_app()

    @app.task(name="tests.refuse")
    def refuse() -> None:
        raise Reject("bad input")

    worker = RunningWorker(app, pool="solo").start()
    try:
        result = refuse.delay()
        [dead] = dead_letters(app.transport)
    finally:
        worker.stop()
    assert dead.envelope.headers["id"] == result.id
    assert dead.envelope.headers[DEAD_LETTER_REASON_HEADER] == "bad input"


def test_failure_is_dead_lettered_when_acks_on_failure_is_off() -> None:
    app = memory_app(task_acks_on_failure_or_timeout=False)

    @app.task(name="tests.fail")
    def fail() -> None:
        raise ValueError("nope")

    worker = RunningWorker(app, pool="solo").start()
    try:
        result = fail.delay()
        [dead] = dead_letters(app.transport)
    finally:
        worker.stop()
    assert result.state == states.FAILURE
    assert "ValueError('nope')" in dead.envelope.headers[DEAD_LETTER_REASON_HEADER]


def test_early_ack_cannot_requeue(caplog: pytest.LogCaptureFixture) -> None:
    app = memory_app(task_acks_late=False)

    @app.task(name="tests.refuse")
    def refuse() -> None:
        raise Reject("again", requeue=True)

    worker = RunningWorker(app, pool="solo").start()
    try:
        refuse.delay()
        wait_until(lambda: "acknowledged before it ran" in caplog.text, 5, message="warning")
    finally:
        worker.stop()
    assert app.transport.queue_length("celery") == 0


def _die_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return "second run"


def test_lost_process_fails_the_task(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)

    @app.task(name="tests.die")
    def die(marker: str) -> str:
        return _die_once(marker)

    worker = RunningWorker(app, pool="prefork", concurrency=1).start()
    try:
        result = die.delay(str(tmp_path / "died"))
        with pytest.raises(WorkerLostError):
            result.get(timeout=10)
    finally:
        worker.stop()
    assert app.transport.queue_length("celery") == 0


def test_lost_process_requeues_with_reject_on_worker_lost(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, task_reject_on_worker_lost=True)
    second = tmp_path / "second run"

    # The second run happens in a child forked while the worker's threads use SQLite; it
    # stores nothing (ignore_result) and says it ran through a file instead, because SQLite
    # cannot be opened safely in a process forked at such a moment.
    @app.task(name="tests.die", ignore_result=True)
    def die(marker: str) -> None:
        _die_once(marker)
        second.touch()

    worker = RunningWorker(app, pool="prefork", concurrency=1).start()
    try:
        die.delay(str(tmp_path / "died"))
        wait_until(second.exists, 10, message="the task ran again")
    finally:
        worker.stop()
    wait_until(lambda: app.transport.queue_length("celery") == 0, 5, message="acknowledged")
