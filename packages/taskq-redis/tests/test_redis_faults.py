"""Faults under real ``taskq worker`` processes on a private redis-server: Redis restarted under
load, a worker killed with tasks in flight, a countdown longer than the visibility timeout, and
publishing while Redis is down.

The workers run ``interop_apps/taskq_side.py``; its tasks count each execution in the same
Redis (HINCRBY per task), retrying the count while Redis is away, so a count tells how often
a task really ran.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from taskq import TaskQ
from taskq.canvas import Signature
from taskq.contracts import DEAD_LETTER_REASON_HEADER, TransportError
from taskq_protocol import Envelope
from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess, answers_ping

TIMEOUT = 20.0

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(interop_apps: Callable[..., InteropApps], tmp_path: Path) -> Iterator[StartWorker]:
    """``start_worker(url, options, queues, **kw)`` starts a ``taskq worker`` on ``url`` with
    those transport options; all are stopped at the test's end (killed if they hang)."""
    with StartedWorkers() as started:

        def start(url: str, options: dict[str, Any], queues: list[str], **kw: Any) -> WorkerProcess:
            log = tmp_path / f"worker-{len(started)}.log"
            return started.add(interop_apps(url, options).taskq_worker(log, queues, **kw))

        yield start


def _client(url: str, **options: Any) -> TaskQ:
    app = TaskQ("faults-client", broker=url, backend=url, set_as_current=False)
    app.conf.broker_transport_options = options
    return app


def _ready(app: TaskQ, worker: WorkerProcess) -> None:
    worker.wait_ready(answers_ping(app))


def _persistent(start_redis: Any) -> Any:
    """A private Redis whose data survives its restart, so what was written is still there."""
    return start_redis("--appendonly", "yes", "--appendfsync", "always")


def _probe(url: str) -> redis.Redis:
    """A plain client for looking at what the workers did (str replies)."""
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1)


def _counts(client: redis.Redis, key: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in client.hgetall(key).items()}


def _settled(client: redis.Redis, queue: str) -> bool:
    """Nothing waiting, delayed or unacknowledged: every message was run and acked."""
    keys = [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9)), f"_taskq.delayed.{queue}"]
    return sum(client.exists(k) for k in keys) == 0 and client.hlen("unacked") == 0


# -- Redis restarted under load -----------------------------------------------------------------


def test_redis_restart_under_load_loses_no_task_and_the_worker_resumes(
    start_redis: Any, start_worker: StartWorker, unique_name: str
) -> None:
    """300 tasks; Redis (append-only, fsync always) is down for 1 s once 60 have run.

    Asserted: every task ran at least once, and the worker (same process) drains the queue
    and runs what is sent after the restart. At least once, not exactly once: a task that
    finished while Redis was away could not be acknowledged, so it comes back after the
    visibility timeout and runs again, as it would under kombu. Such repeats are bounded by
    what the worker held at the time (concurrency + prefetch).
    """
    queue = f"{unique_name}-q"  # the counts are under unique_name
    server = _persistent(start_redis)
    options = {"visibility_timeout": 3}
    concurrency = 4
    worker = start_worker(server.url, options, [queue], concurrency=concurrency)
    app = _client(server.url, **options)
    probe = _probe(server.url)
    try:
        _ready(app, worker)
        fields = [f"t{i}" for i in range(300)]
        app.publisher.send_many(
            [("interop.slow_count", (unique_name, f, 0.01), {}, {"queue": queue}) for f in fields]
        )
        wait_until(lambda: len(_counts(probe, unique_name)) >= 60, TIMEOUT, message="60 ran")
        assert len(_counts(probe, unique_name)) < len(fields), "all ran before the restart"
        server.restart(down_for=1.0)
        wait_until(
            lambda: len(_counts(probe, unique_name)) == len(fields),
            TIMEOUT,
            message="every task ran",
        )
        # Sent after the restart, through the client's own (reconnecting) transport.
        late = app.send_task("interop.count", (unique_name, "late"), queue=queue)
        assert late.get(timeout=TIMEOUT) == "taskq"
        wait_until(lambda: _settled(probe, queue), TIMEOUT, message="queue settled")
        counts = _counts(probe, unique_name)
        assert set(counts) == {*fields, "late"}
        repeats = sum(counts.values()) - len(counts)
        assert repeats <= 2 * concurrency, counts
        assert worker.alive(), worker.tail()
        # Whichever of its calls met the outage first: a fetch (the consumer's or the fetcher
        # thread's) or a batch of acknowledgements; or, when none was made while Redis was
        # down (the children busy retrying their counts, the prefetch full), the first one
        # after, which finds its connection closed.
        output = worker.output()
        signs = ("Broker error", "Could not acknowledge", "Redis closed the connection")
        assert any(sign in output for sign in signs), "the worker never saw Redis go away"

    finally:
        app.close()
        probe.close()


# -- a follow-up Redis refuses ------------------------------------------------------------------


def test_a_follow_up_redis_refuses_sends_its_message_to_the_dead_letters(
    redis_server: Any, start_worker: StartWorker, unique_name: str
) -> None:
    """A chain's next step, published without waiting for Redis's reply (the default), is
    refused (its queue's key holds a string). The worker waits for the replies to what the
    task published before settling its message, so it is not acked as if all went well: it
    goes to ``<queue>.dlq`` with the reason."""
    queue, broken = f"{unique_name}-q", f"{unique_name}-broken"
    worker = start_worker(redis_server.url, {}, [queue], concurrency=1)
    app = _client(redis_server.url)
    probe = _probe(redis_server.url)

    def add(*args: int, on: str) -> Signature[Any, Any]:
        return Signature("interop.add", args, options={"queue": on}, app=app)

    try:
        _ready(app, worker)
        # The worker's first publish of the script on its connection waits for the reply;
        # this chain makes it, so the next chain's step is sent without waiting.
        assert (add(1, 2, on=queue) | add(3, on=queue)).apply_async().get(timeout=TIMEOUT) == 6
        probe.set(broken, "not a list")
        (add(1, 2, on=queue) | add(3, on=broken)).apply_async()
        wait_until(lambda: probe.llen(f"{queue}.dlq") == 1, TIMEOUT, message=worker.tail())
        [raw] = probe.lrange(f"{queue}.dlq", 0, -1)
        reason = str(Envelope.decode(raw).headers[DEAD_LETTER_REASON_HEADER])
        assert "WRONGTYPE" in reason, reason
        assert probe.hlen("unacked") == 0
        assert worker.alive(), worker.tail()
    finally:
        app.close()
        probe.close()


# -- a worker killed with tasks in flight -------------------------------------------------------


def test_a_killed_workers_tasks_run_again_on_another_worker(
    redis_server: Any, start_worker: StartWorker, unique_name: str
) -> None:
    """8 slow tasks (1.5 s, acks late); the first worker is killed (SIGKILL) while 4 run and
    others wait in its prefetch or in the queue. After the 2 s visibility timeout the second
    worker runs all 8; the 4 that were running started twice and finished once."""
    queue = f"{unique_name}-q"  # the counts are under unique_name
    options = {"visibility_timeout": 2}
    app = _client(redis_server.url, **options)
    probe = _probe(redis_server.url)
    try:
        first = start_worker(
            redis_server.url, options, [queue], concurrency=4,
            extra=["--prefetch-multiplier", "2"],
        )  # fmt: skip
        _ready(app, first)
        fields = [f"t{i}" for i in range(8)]
        results = [
            app.send_task("interop.slow_count", (unique_name, f, 1.5), queue=queue) for f in fields
        ]
        started_key = f"{unique_name}:started"
        wait_until(lambda: len(_counts(probe, started_key)) == 4, TIMEOUT, message="4 running")
        first.kill()
        assert _counts(probe, unique_name) == {}  # none finished
        assert probe.hlen("unacked") >= 4  # the running ones, and what it had prefetched
        second = start_worker(redis_server.url, options, [queue], concurrency=4)
        assert [r.get(timeout=TIMEOUT) for r in results] == ["taskq"] * 8
        assert _counts(probe, unique_name) == dict.fromkeys(fields, 1)
        starts = _counts(probe, started_key)
        assert sorted(starts.values()) == [1] * 4 + [2] * 4, starts
        wait_until(lambda: _settled(probe, queue), TIMEOUT, message="queue settled")
        assert second.alive(), second.tail()
    finally:
        app.close()
        probe.close()


# -- a countdown longer than the visibility timeout ---------------------------------------------


def test_a_countdown_beyond_the_visibility_timeout_runs_once(
    redis_server: Any, start_worker: StartWorker, unique_name: str
) -> None:
    """Countdown 4 s, visibility timeout 1 s, two workers. Sent by taskq (kept in taskq's
    delayed set) and by Celery (in the list with an ``eta`` header, which a taskq worker hands
    back to the delayed set): each runs once, after its countdown."""
    queue = f"{unique_name}-q"  # the counts are under unique_name
    options = {"visibility_timeout": 1}
    app = _client(redis_server.url, **options)
    # No result backend on the Celery side: its results are read through taskq.
    celery = Celery("faults-client", broker=redis_server.url, set_as_current=False)
    celery.conf.broker_transport_options = options
    probe = _probe(redis_server.url)
    try:
        pair = [start_worker(redis_server.url, options, [queue], concurrency=2) for _ in range(2)]
        for worker in pair:
            _ready(app, worker)
        sent_at = time.time()
        results = [
            app.send_task("interop.count", (unique_name, "taskq-sent"), queue=queue, countdown=4),
            app.AsyncResult(
                celery.send_task(
                    "interop.count", (unique_name, "celery-sent"), queue=queue, countdown=4
                ).id
            ),
        ]
        # Both wait in Redis, none in a worker, where the visibility timeout would expire (the
        # worker that took Celery's message acks it just after putting it in the delayed set).
        delayed = f"_taskq.delayed.{queue}"
        wait_until(
            lambda: probe.zcard(delayed) == 2 and probe.hlen("unacked") == 0,
            TIMEOUT,
            message="both in the delayed set, nothing unacked",
        )
        assert [r.get(timeout=TIMEOUT) for r in results] == ["taskq", "taskq"]
        for result in results:
            meta = app.backend.get(result.id)
            assert meta is not None
            assert meta.date_done is not None
            # A worker never runs a task before its eta (taskq_worker.consumer.ETA_HOLD only
            # says how near an eta must be for the worker to wait for it in memory).
            assert meta.date_done.timestamp() >= sent_at + 4
        # Longer than one visibility timeout and a restore round: nothing comes back.
        wait_until(lambda: _settled(probe, queue), TIMEOUT, message="queue settled")
        time.sleep(1.5)
        assert _counts(probe, unique_name) == {"taskq-sent": 1, "celery-sent": 1}
        assert _settled(probe, queue)
    finally:
        app.close()
        celery.close()
        probe.close()


# -- publishing while Redis is down -------------------------------------------------------------


#: Three attempts, quickly.
POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
#: Enough attempts to outlast a 0.5 s outage.
PATIENT = {"max_retries": 50, "interval_start": 0.1, "interval_step": 0.1, "interval_max": 0.2}


def _queued_ids(client: redis.Redis, queue: str) -> list[str]:
    """The task ids waiting in ``queue``'s list, oldest first."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(queue, 0, -1))]


def _count_calls(transport: Any, method: str) -> list[str]:
    """Record each call of ``transport.<method>`` (then made as usual): one per attempt."""
    calls: list[str] = []
    real = getattr(transport, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return real(*args, **kwargs)

    setattr(transport, method, counted)
    return calls


def test_publishing_while_redis_is_down_fails_after_the_retries_and_writes_nothing(
    start_redis: Any, unique_name: str
) -> None:
    server = _persistent(start_redis)
    app = _client(server.url)
    probe = _probe(server.url)
    try:
        before = app.send_task("interop.add", (1, 1), queue=unique_name)  # connected first
        publishes = _count_calls(app.transport, "publish")
        server.stop()
        where = f"127.0.0.1:{server.port}"
        with pytest.raises(TransportError, match=f"Redis publish failed: .*{where}"):
            app.send_task("interop.add", (1, 2), queue=unique_name, retry_policy=POLICY)
        assert publishes == ["publish"] * 3
        publishes.clear()
        with pytest.raises(TransportError, match=where):
            app.send_task("interop.add", (1, 3), queue=unique_name, retry=False)
        assert publishes == ["publish"]
        app.conf.task_publish_retry_policy = POLICY
        batches = _count_calls(app.transport, "publish_many")
        with pytest.raises(TransportError, match=where):
            app.publisher.send_many(
                [("interop.add", (i, i), {}, {"queue": unique_name}) for i in range(5)]
            )
        assert batches == ["publish_many"] * 3
        server.start()
        assert _queued_ids(probe, unique_name) == [before.id]
        assert probe.dbsize() == 1
    finally:
        app.close()
        probe.close()


def test_a_client_that_never_connected_retries_its_first_publish(
    redis_server: Any, unique_name: str
) -> None:
    app = _client(redis_server.url)
    redis_server.stop()
    restarter = threading.Timer(0.5, redis_server.start)
    restarter.start()
    try:
        sent = app.send_task("interop.add", (1, 2), queue=unique_name, retry_policy=PATIENT)
    finally:
        restarter.join()
        app.close()
    probe = _probe(redis_server.url)
    assert _queued_ids(probe, unique_name) == [sent.id]
    probe.close()


def test_a_publish_retried_across_a_restart_is_written_once(
    start_redis: Any, unique_name: str
) -> None:
    server = _persistent(start_redis)
    app = _client(server.url)
    probe = _probe(server.url)
    try:
        before = app.send_task("interop.add", (1, 1), queue=unique_name)
        publishes = _count_calls(app.transport, "publish")
        server.stop()
        restarter = threading.Timer(0.5, server.start)
        restarter.start()
        try:
            one = app.send_task("interop.add", (1, 2), queue=unique_name, retry_policy=PATIENT)
            group_ids = app.publisher.send_many(
                [
                    ("interop.add", (i, i), {}, {"queue": unique_name, "retry_policy": PATIENT})
                    for i in range(5)
                ]
            )
        finally:
            restarter.join()
        assert len(publishes) > 1, "the first attempt should have found Redis down"
        assert _queued_ids(probe, unique_name) == [before.id, one.id, *group_ids]
    finally:
        app.close()
        probe.close()
