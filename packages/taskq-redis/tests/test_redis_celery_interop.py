"""taskq and Celery 5.7 on one Redis, as real processes: each side's client drives the other
side's worker, chains and chords cross between them, and both workers share a queue.

One ``celery worker`` (solo pool) and one ``taskq worker`` (threads) run for the whole module,
started from ``interop_apps/`` (the same task names on both sides; each result says which side
ran it). Each consumes its own queue and one shared queue, all named uniquely, on the shared
Redis. The clients live in this process: a Celery app and a taskq app.

taskq's clients here publish with ``delayed_delivery=False``: a countdown message goes to the
queue's list at once with its ``eta`` header, as Celery publishes it, because a Celery worker
never looks in taskq's delayed set (``_taskq.delayed.<queue>``). With the default, a countdown
task reaches a queue that only Celery workers consume only if a taskq process also fetches
from that queue (see ``test_a_default_delayed_countdown_reaches_the_shared_queue``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery
from celery import chord as celery_chord
from celery import group as celery_group
from celery.result import AsyncResult as CeleryAsyncResult

from taskq import TaskQ
from taskq_protocol import states
from taskq_testing.interop_scenarios import (
    assert_alive,
    chain_from_celery,
    chain_from_taskq,
    parse_eta,
    pings_cross,
)
from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess

TIMEOUT = 20.0


@dataclass
class Interop:
    redis: redis.Redis
    taskq: TaskQ
    celery: Celery
    taskq_queue: str
    celery_queue: str
    shared_queue: str
    taskq_worker: WorkerProcess
    celery_worker: WorkerProcess

    def logs(self) -> str:
        return (
            f"--- taskq worker\n{self.taskq_worker.tail()}\n"
            f"--- celery worker\n{self.celery_worker.tail()}"
        )


@pytest.fixture(scope="module")
def interop(
    redis_url: str,
    interop_apps: Callable[..., InteropApps],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Interop]:
    prefix = f"taskq-test-{uuid.uuid4().hex[:12]}"
    taskq_queue, celery_queue, shared_queue = (f"{prefix}-{n}" for n in ("tq", "cq", "shared"))
    logs = tmp_path_factory.mktemp("interop")
    apps = interop_apps(redis_url)
    celery_client = Celery(
        "interop-client", broker=redis_url, backend=redis_url, set_as_current=False
    )
    taskq_client = TaskQ(
        "interop-client", broker=redis_url, backend=redis_url, set_as_current=False
    )
    taskq_client.conf.broker_transport_options = {"delayed_delivery": False}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with StartedWorkers() as started:
            celery_worker, taskq_worker = apps.start_both(
                started, logs,
                celery_queues=[celery_queue, shared_queue],
                taskq_queues=[taskq_queue, shared_queue],
                celery_client=celery_client, taskq_client=taskq_client,
            )  # fmt: skip
            yield Interop(
                client,
                taskq_client,
                celery_client,
                taskq_queue,
                celery_queue,
                shared_queue,
                taskq_worker,
                celery_worker,
            )
    finally:
        taskq_client.close()
        celery_client.close()
        client.close()


@pytest.fixture(autouse=True)
def _workers_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the workers fails with their logs when one of them died meanwhile."""
    yield
    if "interop" in request.fixturenames:
        assert_alive(request.getfixturevalue("interop"))


# -- taskq sends, Celery's worker runs ----------------------------------------------------------


def test_celery_worker_runs_what_taskq_delays(interop: Interop) -> None:
    @interop.taskq.task(name="interop.add", queue=interop.celery_queue)
    def add(x: int, y: int) -> int:
        raise AssertionError("runs on the Celery worker, not here")

    result = add.delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == states.SUCCESS
    assert CeleryAsyncResult(result.id, app=interop.celery).get(timeout=TIMEOUT) == 5


def test_celery_worker_sees_taskq_countdown_priority_and_headers(interop: Interop) -> None:
    sent_at = datetime.now(timezone.utc)
    result = interop.taskq.send_task(
        "interop.request_info",
        queue=interop.celery_queue,
        countdown=1,
        priority=5,
        headers={"x-interop": "from-taskq"},
    )
    info = result.get(timeout=TIMEOUT)
    assert info["side"] == "celery"
    assert info["id"] == result.id
    assert info["priority"] == 5
    assert info["headers"].get("x-interop") == "from-taskq"
    eta = parse_eta(info["eta"])
    assert sent_at + timedelta(seconds=1) <= eta <= sent_at + timedelta(seconds=2)
    meta = interop.taskq.backend.get(result.id)
    assert meta is not None
    assert meta.date_done is not None
    assert meta.date_done >= eta, "ran before its countdown"


def test_taskq_reads_a_celery_worker_failure(interop: Interop) -> None:
    result = interop.taskq.send_task(
        "interop.fail", ("boom from celery",), queue=interop.celery_queue
    )
    with pytest.raises(ValueError, match="boom from celery"):
        result.get(timeout=TIMEOUT)
    assert result.state == states.FAILURE
    assert isinstance(result.result, ValueError)
    assert "ValueError: boom from celery" in (result.traceback or "")


# -- Celery sends, taskq's worker runs ----------------------------------------------------------


def test_celery_reads_what_a_taskq_worker_returns(interop: Interop) -> None:
    add = interop.celery.signature("interop.add").set(queue=interop.taskq_queue)
    result = add.delay(20, 22)
    assert result.get(timeout=TIMEOUT) == 42
    assert result.state == "SUCCESS"
    assert interop.taskq.AsyncResult(result.id).get(timeout=TIMEOUT) == 42


def test_taskq_worker_sees_celery_countdown_priority_and_headers(interop: Interop) -> None:
    sent_at = datetime.now(timezone.utc)
    # 1 s: within taskq_worker.consumer.ETA_HOLD, so the worker holds the message on a timer
    # (a farther eta goes back to the broker), and must still not run it before its eta.
    result = interop.celery.send_task(
        "interop.request_info",
        queue=interop.taskq_queue,
        countdown=1,
        priority=5,
        headers={"x-interop": "from-celery"},
    )
    info = result.get(timeout=TIMEOUT)
    assert info["side"] == "taskq"
    assert info["id"] == result.id
    assert info["priority"] == 5
    assert info["headers"].get("x-interop") == "from-celery"
    eta = parse_eta(info["eta"])
    assert sent_at + timedelta(seconds=1) <= eta <= sent_at + timedelta(seconds=2)
    assert result.date_done is not None
    assert result.date_done >= eta, "ran before its countdown"


def test_celery_reads_a_taskq_worker_failure(interop: Interop) -> None:
    result = interop.celery.send_task(
        "interop.fail", ("boom from taskq",), queue=interop.taskq_queue
    )
    with pytest.raises(ValueError, match="boom from taskq"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    assert isinstance(result.result, ValueError)
    assert "ValueError: boom from taskq" in (result.traceback or "")


# -- chains across ------------------------------------------------------------------------------


def test_a_chain_from_celery_crosses_both_workers(interop: Interop) -> None:
    chain_from_celery(interop, TIMEOUT)


def test_a_chain_from_taskq_crosses_both_workers(interop: Interop) -> None:
    chain_from_taskq(interop, TIMEOUT, first="taskq")


# -- a chord across -----------------------------------------------------------------------------


@pytest.mark.parametrize("last", ["celery", "taskq"])
@pytest.mark.parametrize("body_on", ["celery", "taskq"])
def test_a_chord_from_celery_split_between_workers_fires_once(
    interop: Interop, unique_name: str, last: str, body_on: str
) -> None:
    """Two header tasks on each worker; the parts of ``last`` wait 2 s (a countdown beyond
    the taskq worker's 1 s eta tolerance), so that side's worker completes the chord and sends
    the body, which runs once on ``body_on``."""
    app = interop.celery
    queue = {"celery": interop.celery_queue, "taskq": interop.taskq_queue}
    sides = ["celery", "taskq", "celery", "taskq"]
    header = [
        app.signature(
            "interop.add", (n, n), queue=queue[side], countdown=2 if side == last else None
        )
        for n, side in enumerate(sides, start=1)
    ]
    body = app.signature("interop.collect", kwargs={"key": unique_name}, queue=queue[body_on])
    result: Any = celery_chord(header)(body)  # Celery's AsyncResult, untyped
    outcome = result.get(timeout=TIMEOUT)
    assert outcome == {"parts": [2, 4, 6, 8], "side": body_on, "run": 1}
    assert interop.taskq.AsyncResult(result.id).get(timeout=TIMEOUT) == outcome
    # The part that finished last ran on ``last``: its worker completed the chord.
    metas = [interop.taskq.backend.get(part.id) for part in result.parent.results]
    finished = [meta.date_done for meta in metas if meta is not None and meta.date_done]
    assert len(finished) == len(sides)
    assert sides[finished.index(max(finished))] == last
    # Nothing runs the body again: both workers are idle and it still counted once.
    wait_until(
        lambda: (
            interop.redis.llen(interop.celery_queue) == 0
            and interop.redis.llen(interop.taskq_queue) == 0
        ),
        TIMEOUT,
    )
    time.sleep(0.3)  # time for a duplicate body a worker had already taken to run
    assert interop.redis.get(unique_name) == "1"


# -- one queue, both workers --------------------------------------------------------------------


def test_both_workers_on_one_queue_run_every_task_once(interop: Interop, unique_name: str) -> None:
    """60 tasks from both clients (single sends and a batch from each) on the shared queue."""
    shared = interop.shared_queue
    seconds = 0.02
    fields = [f"t{i}" for i in range(60)]
    taskq_results = [
        interop.taskq.send_task("interop.slow_count", (unique_name, f, seconds), queue=shared)
        for f in fields[:15]
    ]
    task_ids = interop.taskq.publisher.send_many(
        [
            ("interop.slow_count", (unique_name, f, seconds), {}, {"queue": shared})
            for f in fields[15:30]
        ]
    )
    taskq_results += [interop.taskq.AsyncResult(task_id) for task_id in task_ids]
    celery_results = [
        interop.celery.send_task("interop.slow_count", (unique_name, f, seconds), queue=shared)
        for f in fields[30:45]
    ]
    celery_results += list(
        celery_group(
            interop.celery.signature("interop.slow_count", (unique_name, f, seconds), queue=shared)
            for f in fields[45:]
        ).apply_async()
    )
    sides = [r.get(timeout=TIMEOUT) for r in taskq_results]
    sides += [r.get(timeout=TIMEOUT) for r in celery_results]
    counts = {k: int(v) for k, v in interop.redis.hgetall(unique_name).items()}
    assert counts == dict.fromkeys(fields, 1)
    assert set(sides) == {"celery", "taskq"}, "one worker took every task"
    by_side = {
        side: sum(int(v) for v in interop.redis.hvals(f"{unique_name}:{side}"))
        for side in ("celery", "taskq")
    }
    assert by_side["celery"] + by_side["taskq"] == len(fields)


def test_a_default_delayed_countdown_reaches_the_shared_queue(
    interop: Interop, redis_url: str, unique_name: str
) -> None:
    """taskq's default keeps a countdown in its delayed set; on a queue a taskq worker also
    consumes, the first fetch after it is due moves it to the list, and it runs once, on
    whichever worker takes it."""
    client = TaskQ("interop-delayed", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        result = client.send_task(
            "interop.count", (unique_name, "late"), queue=interop.shared_queue, countdown=1
        )
        delayed = f"_taskq.delayed.{interop.shared_queue}"
        assert interop.redis.zcard(delayed) == 1
        assert result.get(timeout=TIMEOUT) in {"celery", "taskq"}
        assert interop.redis.zcard(delayed) == 0
        assert interop.redis.hgetall(unique_name) == {"late": "1"}
    finally:
        client.close()


# -- remote control -----------------------------------------------------------------------------


def test_a_celery_revoke_reaches_the_taskq_worker(interop: Interop, unique_name: str) -> None:
    """Celery's pidbox request (pub/sub on /0.celery.pidbox) is read by taskq's worker."""
    task_id = str(uuid.uuid4())
    interop.celery.control.revoke(task_id, destination=[interop.taskq_worker.node])
    # Both requests travel on one pub/sub channel, in the order Redis received them, and the
    # worker handles them in turn: it has applied the revoke when it answers this.
    revoked = interop.taskq.control.broadcast(
        "revoked", destination=[interop.taskq_worker.node], reply=True, timeout=5, limit=1
    )
    assert [list(reply) for reply in revoked] == [[interop.taskq_worker.node]]
    assert task_id in revoked[0][interop.taskq_worker.node]
    result = interop.celery.send_task(
        "interop.count", (unique_name, "revoked"), queue=interop.taskq_queue, task_id=task_id
    )
    wait_until(lambda: result.state == "REVOKED", TIMEOUT, message="REVOKED")
    assert interop.redis.hgetall(unique_name) == {}


def test_a_taskq_revoke_reaches_the_celery_worker(interop: Interop, unique_name: str) -> None:
    task_id = str(uuid.uuid4())
    interop.taskq.control.revoke(task_id, destination=[interop.celery_worker.node])
    revoked = interop.celery.control.inspect(
        destination=[interop.celery_worker.node], timeout=1
    ).revoked()
    assert revoked is not None
    assert task_id in revoked[interop.celery_worker.node]
    result = interop.taskq.send_task(
        "interop.count", (unique_name, "revoked"), queue=interop.celery_queue, task_id=task_id
    )
    wait_until(lambda: result.state == states.REVOKED, TIMEOUT, message="REVOKED")
    assert interop.redis.hgetall(unique_name) == {}


def test_pings_cross_both_ways(interop: Interop) -> None:
    pings_cross(interop, timeout=5)


def test_celery_inspect_cli_pings_the_taskq_worker(interop: Interop, redis_url: str) -> None:
    """``celery inspect ping`` from the command line, as an operator runs it."""
    node = interop.taskq_worker.node
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "--broker",
            redis_url,
            "inspect",
            "ping",
            "--destination",
            node,
            "--timeout",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {node: {"ok": "pong"}}


def test_celery_inspect_reads_the_taskq_worker(interop: Interop) -> None:
    node = interop.taskq_worker.node
    inspect = interop.celery.control.inspect(destination=[node], timeout=2)
    queues = inspect.active_queues()
    assert queues is not None
    assert {q["name"] for q in queues[node]} >= {interop.taskq_queue, interop.shared_queue}
    registered = inspect.registered()
    assert registered is not None
    assert "interop.add" in registered[node]
    assert inspect.active() == {node: []}


def test_celery_sets_a_rate_limit_on_the_taskq_worker(interop: Interop) -> None:
    node = interop.taskq_worker.node
    replies = interop.celery.control.rate_limit(
        "interop.no-such-task", "10/m", destination=[node], reply=True, timeout=2
    )
    assert len(replies) == 1
    assert "error" in replies[0][node]


def test_one_request_collects_both_workers(interop: Interop) -> None:
    nodes = [interop.taskq_worker.node, interop.celery_worker.node]
    expected = sorted(nodes)
    from_celery = interop.celery.control.ping(destination=nodes, timeout=2)
    assert sorted(next(iter(r)) for r in from_celery) == expected
    from_taskq = interop.taskq.control.broadcast(
        "ping", destination=nodes, reply=True, timeout=5, limit=2
    )
    assert sorted(next(iter(r)) for r in from_taskq) == expected


def test_taskq_client_leaves_no_reply_queue_behind(interop: Interop) -> None:
    node = interop.taskq_worker.node
    assert interop.taskq.control.ping(destination=[node], timeout=1)
    oid = interop.taskq.thread_oid
    queue = f"{oid}.reply.celery.pidbox"
    assert interop.redis.exists(queue) == 0
    members = interop.redis.smembers("_kombu.binding.reply.celery.pidbox")
    assert not [m for m in map(str, members) if m.endswith(queue)]


def test_taskq_inspects_the_celery_worker(interop: Interop) -> None:
    node = interop.celery_worker.node
    [reply] = interop.taskq.control.broadcast(
        "active_queues", destination=[node], reply=True, timeout=5, limit=1
    )
    names = {queue["name"] for queue in reply[node]}
    assert names >= {interop.celery_queue, interop.shared_queue}
