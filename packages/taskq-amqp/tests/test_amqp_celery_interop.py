"""taskq and Celery 5.7 on one RabbitMQ, as real processes: each side's client drives the
other side's worker, countdowns cross through Celery's native delayed delivery, and chains
cross between the workers.

One ``celery worker`` (solo pool) and one ``taskq worker`` (threads) run for the module,
started from ``interop_apps/``. The queues are quorum queues on a topic exchange, declared
alike by both apps (``task_queues``): that is what makes a Celery 5.5+ client send a
countdown through ``celery_delayed_27`` instead of holding it in the worker. Results go to
Redis (both sides' Redis result backend).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery
from kombu.entity import Exchange, Queue

from taskq import TaskQ
from taskq.contracts import QueueSpec
from taskq_amqp.transport import AmqpTransport
from taskq_testing.interop_scenarios import (
    assert_alive,
    chain_from_celery,
    chain_from_taskq,
    parse_eta,
    pings_cross,
)
from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess

pytestmark = pytest.mark.interop

TIMEOUT = 30.0


@dataclass
class Interop:
    taskq: TaskQ
    celery: Celery
    taskq_queue: str
    celery_queue: str
    #: Declared by both apps, consumed by no worker: shows where a message waits.
    idle_queue: str
    exchange: str
    amqp_url: str
    taskq_worker: WorkerProcess
    celery_worker: WorkerProcess

    def logs(self) -> str:
        return (
            f"--- taskq worker\n{self.taskq_worker.tail()}\n"
            f"--- celery worker\n{self.celery_worker.tail()}"
        )


def _queues(exchange: str, names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "exchange": exchange,
            "exchange_type": "topic",
            "routing_key": name,
            "queue_arguments": {"x-queue-type": "quorum"},
        }
        for name in names
    ]


@pytest.fixture(scope="module")
def interop(
    amqp_url: str,
    results_redis_url: str,
    interop_apps: Callable[..., InteropApps],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Interop]:
    prefix = f"taskq-test-{uuid.uuid4().hex[:12]}"
    taskq_queue, celery_queue, idle_queue = f"{prefix}-tq", f"{prefix}-cq", f"{prefix}-idle"
    exchange = f"{prefix}-x"
    names = [taskq_queue, celery_queue, idle_queue]
    logs = tmp_path_factory.mktemp("amqp-interop")
    apps = interop_apps(amqp_url, results_redis_url, exchange, names)
    celery_client = Celery(
        "interop-client", broker=amqp_url, backend=results_redis_url, set_as_current=False
    )
    celery_client.conf.task_queues = [
        Queue(q["name"], Exchange(exchange, type="topic"), routing_key=q["routing_key"],
              queue_arguments=q["queue_arguments"])
        for q in _queues(exchange, names)
    ]  # fmt: skip
    taskq_client = TaskQ(
        "interop-client", broker=amqp_url, backend=results_redis_url, set_as_current=False
    )
    taskq_client.conf.task_queues = _queues(exchange, names)
    try:
        with StartedWorkers() as started:
            celery_worker, taskq_worker = apps.start_both(
                started, logs, celery_queues=[celery_queue], taskq_queues=[taskq_queue],
                celery_client=celery_client, taskq_client=taskq_client,
            )  # fmt: skip
            yield Interop(
                taskq_client,
                celery_client,
                taskq_queue,
                celery_queue,
                idle_queue,
                exchange,
                amqp_url,
                taskq_worker,
                celery_worker,
            )
    finally:
        taskq_client.close()
        celery_client.close()
        cleanup = AmqpTransport(amqp_url, {})
        cleanup.connect()
        for name in names:
            cleanup.delete_queue(name)
        cleanup.close()


@pytest.fixture(autouse=True)
def _workers_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the workers fails with their logs when one of them died meanwhile."""
    yield
    if "interop" in request.fixturenames:
        assert_alive(request.getfixturevalue("interop"))


def test_celery_worker_runs_what_taskq_sends(interop: Interop) -> None:
    result = interop.taskq.send_task("interop.add", (2, 3), queue=interop.celery_queue)
    assert result.get(timeout=TIMEOUT) == 5, interop.logs()


def test_taskq_worker_runs_what_celery_sends(interop: Interop) -> None:
    add = interop.celery.signature("interop.add").set(queue=interop.taskq_queue)
    result = add.delay(20, 22)
    assert result.get(timeout=TIMEOUT) == 42, interop.logs()
    assert interop.taskq.AsyncResult(result.id).get(timeout=TIMEOUT) == 42


def test_celery_worker_runs_a_taskq_countdown_after_it(interop: Interop) -> None:
    sent_at = datetime.now(timezone.utc)
    result = interop.taskq.send_task(
        "interop.request_info",
        queue=interop.celery_queue,
        countdown=2,
        priority=5,
        headers={"x-interop": "from-taskq"},
    )
    info = result.get(timeout=TIMEOUT)
    assert info["side"] == "celery"
    assert info["headers"].get("x-interop") == "from-taskq"
    eta = parse_eta(info["eta"])
    assert sent_at + timedelta(seconds=2) <= eta <= sent_at + timedelta(seconds=3)
    meta = interop.taskq.backend.get(result.id)
    assert meta is not None
    assert meta.date_done is not None
    assert meta.date_done >= eta, "ran before its countdown"


def test_taskq_worker_runs_a_celery_countdown_after_it(interop: Interop) -> None:
    """Celery 5.5+ sends it through celery_delayed_27 (quorum queue, topic exchange)."""
    sent_at = datetime.now(timezone.utc)
    result = interop.celery.send_task(
        "interop.request_info",
        queue=interop.taskq_queue,
        countdown=3,
        headers={"x-interop": "from-celery"},
    )
    info = result.get(timeout=TIMEOUT)
    assert info["side"] == "taskq"
    assert info["headers"].get("x-interop") == "from-celery"
    eta = parse_eta(info["eta"])
    assert sent_at + timedelta(seconds=3) <= eta <= sent_at + timedelta(seconds=4)
    assert result.date_done is not None
    assert result.date_done >= eta, "ran before its countdown"


def test_a_chain_from_celery_crosses_both_workers(interop: Interop) -> None:
    chain_from_celery(interop, TIMEOUT)


def test_a_chain_from_taskq_crosses_both_workers(interop: Interop) -> None:
    chain_from_taskq(interop, TIMEOUT, first="celery")


def test_remote_control_crosses_both_ways(interop: Interop) -> None:
    """pidbox requests on the ``celery.pidbox`` fanout, replies through the direct
    ``reply.celery.pidbox`` exchange: each side's client pings the other side's worker."""
    pings_cross(interop, timeout=5)


@pytest.mark.parametrize("client", ["celery", "taskq"])
def test_a_countdown_waits_in_the_broker_not_in_the_queue(interop: Interop, client: str) -> None:
    """Either client's countdown goes through the delay levels: the destination queue is
    empty until the countdown has passed, then holds the message, which nobody consumes.

    The queue is declared as a taskq worker declares what it consumes, which binds it to
    ``celery_delayed_delivery``: Celery binds only the queues its workers consume, and drops
    a countdown to any other queue when it leaves the last level."""
    observer = AmqpTransport(interop.amqp_url, {})
    observer.connect()
    try:
        [spec] = _queues(interop.exchange, [interop.idle_queue])
        observer.declare_queue(
            QueueSpec(
                spec["name"],
                exchange=spec["exchange"],
                exchange_type="topic",
                routing_key=spec["routing_key"],
                arguments=spec["queue_arguments"],
            )
        )
        observer.purge(interop.idle_queue)
        sender: Any = interop.celery if client == "celery" else interop.taskq
        sent = time.monotonic()
        sender.send_task("interop.add", (1, 1), queue=interop.idle_queue, countdown=3)
        assert observer.queue_length(interop.idle_queue) == 0, "it waits in celery_delayed_*"
        wait_until(
            lambda: observer.queue_length(interop.idle_queue) == 1,
            TIMEOUT,
            message="it reached the queue after its countdown",
        )
        assert time.monotonic() - sent >= 2.9
        assert observer.purge(interop.idle_queue) == 1
    finally:
        observer.close()
