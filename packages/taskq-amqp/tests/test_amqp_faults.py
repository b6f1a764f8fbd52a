"""Faults under real ``taskq worker`` processes on a private rabbitmq-server: the broker
restarted under load, a worker killed with unacked tasks, and a countdown longer than
RabbitMQ's ``consumer_timeout``.

The workers run ``interop_apps/amqp_taskq_side.py``; its tasks count each execution in
Redis (HINCRBY per task), so a count tells how often a task really ran.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from taskq import TaskQ
from taskq_testing.waiting import wait_until

APPS = Path(__file__).resolve().parent / "interop_apps"
TIMEOUT = 60.0


def _load(name: str) -> ModuleType:
    """A helper module from interop_apps/ (importlib mode cannot import siblings)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, APPS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


workers = _load("amqp_worker_processes")


@pytest.fixture
def started() -> Iterator[list[Any]]:
    """Worker processes a test started; all stopped at its end (killed if they hang)."""
    processes: list[Any] = []
    yield processes
    for process in processes:
        process.stop()


@pytest.fixture
def queue() -> str:
    return f"taskq-test-faults-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def probe(results_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(results_redis_url, decode_responses=True)
    yield client
    client.close()


def _env(amqp_url: str, results_url: str, queue: str) -> dict[str, str]:
    # No task_queues: the worker consumes ``queue`` as a plain durable queue (-Q).
    return workers.environment(amqp_url, results_url, "", [])


def _start(started: list[Any], tmp_path: Path, env: dict[str, str], queue: str, **kw: Any) -> Any:
    worker = workers.start_taskq_worker(env, tmp_path / f"w{len(started)}.log", [queue], **kw)
    started.append(worker)
    return worker


def _client(amqp_url: str, results_url: str) -> TaskQ:
    return TaskQ("faults-client", broker=amqp_url, backend=results_url, set_as_current=False)


def _ready(app: TaskQ, worker: Any) -> None:
    worker.wait_ready(lambda node: bool(app.control.ping(destination=[node], timeout=0.5)))


def _counts(probe: redis.Redis, key: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in probe.hgetall(key).items()}


def test_broker_restart_under_load_loses_nothing_and_the_worker_resumes(
    private_rabbit: Any,
    results_redis_url: str,
    probe: redis.Redis,
    started: list[Any],
    tmp_path: Path,
    queue: str,
) -> None:
    """200 tasks; RabbitMQ is stopped and started again once 40 have run.

    Every task runs at least once (a task that finished while the broker was away could
    not be acked and runs again: at least once), and the same worker process drains the
    queue and runs what is sent after the restart, without being restarted itself.
    """
    url = private_rabbit.url
    key = f"{queue}-counts"
    worker = _start(started, tmp_path, _env(url, results_redis_url, queue), queue, concurrency=4)
    app = _client(url, results_redis_url)
    try:
        _ready(app, worker)
        fields = [f"t{i}" for i in range(200)]
        for field in fields:
            app.send_task("interop.slow_count", (key, field, 0.02), queue=queue)
        wait_until(lambda: len(_counts(probe, key)) >= 40, TIMEOUT, message="40 ran")
        private_rabbit.restart()
        wait_until(
            lambda: len(_counts(probe, key)) == len(fields),
            TIMEOUT * 2,
            message=f"every task ran after the restart\n{worker.tail()}",
        )
        assert worker.alive(), worker.tail()
        after = [f"after{i}" for i in range(10)]
        for field in after:
            app.send_task("interop.count", (key, field), queue=queue)
        wait_until(
            lambda: all(f in _counts(probe, key) for f in after),
            TIMEOUT,
            message=f"the worker runs new tasks after the restart\n{worker.tail()}",
        )
        counts = _counts(probe, key)
        assert all(counts[f] >= 1 for f in fields + after)
    finally:
        app.close()


def test_a_killed_workers_unacked_tasks_run_again(
    private_rabbit: Any,
    results_redis_url: str,
    probe: redis.Redis,
    started: list[Any],
    tmp_path: Path,
    queue: str,
) -> None:
    url = private_rabbit.url
    key = f"{queue}-counts"
    env = _env(url, results_redis_url, queue)
    doomed = _start(started, tmp_path, env, queue, concurrency=2)
    app = _client(url, results_redis_url)
    try:
        _ready(app, doomed)
        fields = [f"t{i}" for i in range(4)]
        for field in fields:
            app.send_task("interop.slow_count", (key, field, 5.0), queue=queue)
        wait_until(
            lambda: len(_counts(probe, f"{key}:started")) >= 2,
            TIMEOUT,
            message="two tasks started on the doomed worker",
        )
        doomed.kill()
        assert _counts(probe, key) == {}, "nothing finished before the kill"
        rescuer = _start(started, tmp_path, env, queue, concurrency=4)
        _ready(app, rescuer)
        wait_until(
            lambda: set(_counts(probe, key)) == set(fields),
            TIMEOUT,
            message=f"every task ran on the second worker\n{rescuer.tail()}",
        )
        assert all(n == 1 for n in _counts(probe, key).values())
        started_counts = _counts(probe, f"{key}:started")
        assert sum(started_counts.values()) >= len(fields) + 2, "the killed ones started again"
    finally:
        app.close()


def test_a_countdown_longer_than_consumer_timeout_runs_once(
    private_rabbit: Any,
    results_redis_url: str,
    probe: redis.Redis,
    started: list[Any],
    tmp_path: Path,
    queue: str,
) -> None:
    """consumer_timeout is 4 s on the private server (checked every second): a worker
    holding a message that long would lose its channel and the message would run twice.
    The countdown waits in the broker's delay levels instead, so nobody holds it."""
    url = private_rabbit.url
    key = f"{queue}-counts"
    worker = _start(started, tmp_path, _env(url, results_redis_url, queue), queue, concurrency=2)
    app = _client(url, results_redis_url)
    try:
        _ready(app, worker)
        sent = time.time()
        app.send_task("interop.count", (key, "delayed"), queue=queue, countdown=7)
        wait_until(lambda: "delayed" in _counts(probe, key), TIMEOUT, message="it ran")
        assert time.time() >= sent + 7 - 0.05, "ran before its countdown"
        # Long enough for a consumer_timeout (4 s + a 1 s tick) to have fired if anything
        # held a message, then a marker proves the worker is still consuming.
        time.sleep(6)
        app.send_task("interop.count", (key, "marker"), queue=queue)
        wait_until(lambda: "marker" in _counts(probe, key), TIMEOUT, message="marker ran")
        assert _counts(probe, key) == {"delayed": 1, "marker": 1}
        assert worker.alive(), worker.tail()
    finally:
        app.close()
