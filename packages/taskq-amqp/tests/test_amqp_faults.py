"""Faults under real ``taskq worker`` processes on a private rabbitmq-server: the broker
restarted under load, a worker killed with unacked tasks, and a countdown longer than
RabbitMQ's ``consumer_timeout``.

The workers run ``interop_apps/amqp_taskq_side.py``; its tasks count each execution in
Redis (HINCRBY per task), so a count tells how often a task really ran.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq import TaskQ
from taskq.contracts import Delivery, QueueSpec, TransportError
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess, answers_ping

TIMEOUT = 60.0

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(
    interop_apps: Callable[..., InteropApps], results_redis_url: str, tmp_path: Path
) -> Iterator[StartWorker]:
    """``start_worker(amqp_url, queue, **kw)`` starts a ``taskq worker`` on that broker; all
    are stopped at the test's end (killed if they hang)."""
    with StartedWorkers() as started:

        def start(amqp_url: str, queue: str, **kw: Any) -> WorkerProcess:
            # No task_queues: the worker consumes ``queue`` as a plain durable queue (-Q).
            apps = interop_apps(amqp_url, results_redis_url)
            log = tmp_path / f"w{len(started)}.log"
            return started.add(apps.taskq_worker(log, [queue], **kw))

        yield start


@pytest.fixture
def queue() -> str:
    return f"taskq-test-faults-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def probe(results_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(results_redis_url, decode_responses=True)
    yield client
    client.close()


def _client(amqp_url: str, results_url: str) -> TaskQ:
    return TaskQ("faults-client", broker=amqp_url, backend=results_url, set_as_current=False)


def _ready(app: TaskQ, worker: WorkerProcess) -> None:
    worker.wait_ready(answers_ping(app))


def _counts(probe: redis.Redis, key: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in probe.hgetall(key).items()}


def test_broker_restart_under_load_loses_nothing_and_the_worker_resumes(
    private_rabbit: Any,
    results_redis_url: str,
    probe: redis.Redis,
    start_worker: StartWorker,
    queue: str,
) -> None:
    """200 tasks; RabbitMQ is stopped and started again once 40 have run.

    Every task runs at least once (a task that finished while the broker was away could
    not be acked and runs again: at least once), and the same worker process drains the
    queue and runs what is sent after the restart, without being restarted itself.
    """
    url = private_rabbit.url
    key = f"{queue}-counts"
    worker = start_worker(url, queue, concurrency=4)
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
    start_worker: StartWorker,
    queue: str,
) -> None:
    url = private_rabbit.url
    key = f"{queue}-counts"
    doomed = start_worker(url, queue, concurrency=2)
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
        rescuer = start_worker(url, queue, concurrency=4)
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
    start_worker: StartWorker,
    queue: str,
) -> None:
    """consumer_timeout is 4 s on the private server (checked every second): a worker
    holding a message that long would lose its channel and the message would run twice.
    The countdown waits in the broker's delay levels instead, so nobody holds it."""
    url = private_rabbit.url
    key = f"{queue}-counts"
    worker = start_worker(url, queue, concurrency=2)
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


def test_a_transport_rides_out_a_stopped_broker(private_rabbit: Any, queue: str) -> None:
    """While RabbitMQ is down a fetch comes back empty, a publish fails after its retry
    window, settling is harmless; once it is back the same transport publishes and consumes
    again, and what it held unacked when the connection dropped is delivered again."""
    transport = AmqpTransport(private_rabbit.url, {"publish_retry_timeout": 1.0})
    transport.connect()
    try:
        transport.declare_queue(QueueSpec(queue, routing_key=queue))
        held = make_envelope(queue)
        transport.publish(queue, held)
        [delivery] = transport.fetch([queue], 1, 10.0)
        private_rabbit.stop()
        assert transport.fetch([queue], 1, 0.5) == []
        with pytest.raises(TransportError):
            transport.publish(queue, make_envelope(queue))
        transport.ack([delivery])  # its connection is gone: nothing to settle
        private_rabbit.start()
        later = make_envelope(queue)
        wait_until(lambda: _publishes(transport, queue, later), TIMEOUT, message="published")
        got: list[Delivery] = []
        wait_until(
            lambda: got.extend(transport.fetch([queue], 10, 0.5)) or len(got) >= 2,
            TIMEOUT,
            message="both messages arrived",
        )
        assert sorted(task_id_of(d) for d in got) == sorted(map(task_id_of, (held, later)))
        [again] = [d for d in got if task_id_of(d) == task_id_of(held)]
        assert again.redelivered
        transport.ack(got)
    finally:
        transport.close()


def _publishes(transport: AmqpTransport, queue: str, envelope: Any) -> bool:
    try:
        transport.publish(queue, envelope)
    except TransportError:
        return False
    return True
