"""End to end: real ``taskq worker`` processes killed with ``SIGKILL`` or stopped with
``SIGTERM`` while tasks run. Nothing is lost: a killed worker's tasks run again in the next
worker, a warm shutdown finishes what runs and gives back what waits, and a message that
keeps killing its workers ends in the dead-letter queue instead of looping.

Each test starts its own workers (a killed worker cannot be shared); the visibility timeout of
:mod:`e2e_tasks` is short, so a killed worker's messages come back within seconds.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.contracts import DEAD_LETTER_REASON_HEADER
from taskq_protocol import states
from taskq_testing.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import (
    TIMEOUT,
    WorkerProcess,
    live_in_group,
    runs,
    start_worker,
    wait_for_runs,
)
from e2e_tasks import make_app
from worker_harness import dead_letters

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; prefork forks")

POOLS = ["solo", "threads", "prefork"]
#: Long enough that a task still runs when the test acts on it, short for the run after.
LONG = 1.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TaskQ]:
    app = make_app(tmp_path, set_as_current=False)
    yield app
    app.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts workers on ``tmp_path``; every one is stopped (or killed) at the end."""
    started: list[WorkerProcess] = []

    def start(pool: str, **settings: Any) -> WorkerProcess:
        worker = start_worker(tmp_path, pool, concurrency=_concurrency(pool), **settings)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _concurrency(pool: str) -> int:
    return 1 if pool == "solo" else 2


def _label() -> str:
    return uuid.uuid4().hex


def _gone(worker: WorkerProcess) -> None:
    wait_until(
        lambda: not live_in_group(worker.pid), TIMEOUT, message="every process of the worker gone"
    )


@pytest.mark.slow
@pytest.mark.parametrize("pool", POOLS)
def test_kill_9_mid_task_loses_nothing(
    pool: str, tmp_path: Path, client: TaskQ, workers: Callable[..., WorkerProcess]
) -> None:
    running = [_label() for _ in range(_concurrency(pool))]
    waiting = _label()
    results = [client.send_task("e2e.run", (name, LONG)) for name in running]
    results.append(client.send_task("e2e.run", (waiting,)))
    first = workers(pool)  # after sending: it takes them in one fetch and starts them at once
    for name in running:
        wait_for_runs(tmp_path, name)
    first.kill()
    _gone(first)
    assert {r.state for r in results} == {states.PENDING}

    second = workers(pool)
    assert [r.get(timeout=TIMEOUT) for r in results] == [*running, waiting]
    for name in running:
        before, again = runs(tmp_path, name)
        assert before.pid != again.pid, "the second run is the new worker's"
    assert len(runs(tmp_path, waiting)) == 1
    assert client.transport.queue_length("celery") == 0
    assert second.process.poll() is None


@pytest.mark.parametrize("pool", POOLS)
def test_warm_shutdown_finishes_running_tasks_and_gives_back_the_rest(
    pool: str, tmp_path: Path, client: TaskQ, workers: Callable[..., WorkerProcess]
) -> None:
    running = [_label() for _ in range(_concurrency(pool))]
    waiting = _label()
    results = [client.send_task("e2e.run", (name, LONG)) for name in running]
    left = client.send_task("e2e.run", (waiting,))
    worker = workers(pool)  # after sending: it takes them in one fetch and starts them at once
    for name in running:
        wait_for_runs(tmp_path, name)
    assert worker.terminate() == 0, worker.log_tail()
    assert [r.state for r in results] == [states.SUCCESS] * len(running)
    assert [r.result for r in results] == running
    # Not started before the shutdown: back in the queue, for the next worker.
    assert left.state == states.PENDING
    assert runs(tmp_path, waiting) == []
    assert client.transport.queue_length("celery") == 1
    _gone(worker)


@pytest.mark.slow
def test_a_message_that_keeps_killing_workers_is_dead_lettered(
    tmp_path: Path, client: TaskQ, workers: Callable[..., WorkerProcess]
) -> None:
    # A limit of 1: the first redelivery is one too many.
    first = workers("solo", worker_max_deliveries=1)
    name = _label()
    result = client.send_task("e2e.run", (name, 30.0))
    wait_for_runs(tmp_path, name)
    first.kill()

    second = workers("solo", worker_max_deliveries=1)
    [dead] = dead_letters(client.transport)
    assert dead.envelope.headers["id"] == result.id
    reason = str(dead.envelope.headers[DEAD_LETTER_REASON_HEADER])
    assert "delivered 2 times, more than worker_max_deliveries (1)" in reason
    assert f"Task e2e.run[{result.id}] moved to dead-letter queue celery.dlq" in second.log_text()
    assert len(runs(tmp_path, name)) == 1, "not run again"
    assert result.state == states.PENDING
    # The worker goes on.
    assert client.send_task("e2e.add", (1, 2)).get(timeout=TIMEOUT) == 3
