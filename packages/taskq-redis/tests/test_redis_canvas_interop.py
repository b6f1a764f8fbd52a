"""Workflows across taskq and Celery 5.7 on one Redis: built and started by one side's client,
run by the other side's worker, read back by both.

Every test runs in both directions (``direction``): a Celery client's chain, group, chord,
map, chunks... run by a real ``taskq worker``, and the same workflow built with taskq's canvas
run by a real ``celery worker``. The starting client reads the result, as a user of that side
would, and the other side's client reads it too. Chord bodies count their runs in Redis
(``interop.collect``: INCR), so "the body ran once" is checked, not assumed.

One ``celery worker`` (solo pool) and one ``taskq worker`` (threads) serve the module, started
from ``interop_apps/`` (the same task names on both sides), each on a queue of its own on the
shared Redis. Every signature names its queue: a body or a replacement is sent by a worker,
and a worker's default queue is no test's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from celery import canvas as celery_canvas

from taskq import TaskQ
from taskq import canvas as taskq_canvas
from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess

TIMEOUT = 20.0


@dataclass
class Sides:
    """Both clients and both workers, each worker on its own queue."""

    redis: redis.Redis
    taskq: TaskQ
    celery: Celery
    queues: dict[str, str]
    workers: dict[str, WorkerProcess]

    def logs(self) -> str:
        return "\n".join(f"--- {side} worker\n{w.tail()}" for side, w in self.workers.items())


@pytest.fixture(scope="module")
def sides(
    redis_url: str,
    interop_apps: Callable[..., InteropApps],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Sides]:
    prefix = f"taskq-test-{uuid.uuid4().hex[:12]}"
    queues = {"taskq": f"{prefix}-canvas-tq", "celery": f"{prefix}-canvas-cq"}
    logs = tmp_path_factory.mktemp("canvas-interop")
    apps = interop_apps(redis_url)
    celery_client = Celery(
        "canvas-interop-client", broker=redis_url, backend=redis_url, set_as_current=False
    )
    taskq_client = TaskQ(
        "canvas-interop-client", broker=redis_url, backend=redis_url, set_as_current=False
    )
    # Countdowns go to the list with their eta, as Celery sends them (see the interop tests).
    taskq_client.conf.broker_transport_options = {"delayed_delivery": False}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with StartedWorkers() as started:
            celery_worker, taskq_worker = apps.start_both(
                started, logs, celery_queues=[queues["celery"]], taskq_queues=[queues["taskq"]],
                celery_client=celery_client, taskq_client=taskq_client,
            )  # fmt: skip
            yield Sides(
                client,
                taskq_client,
                celery_client,
                queues,
                {"taskq": taskq_worker, "celery": celery_worker},
            )
    finally:
        taskq_client.close()
        celery_client.close()
        client.close()


@dataclass
class Direction:
    """Workflows built with ``client``'s canvas, run by the other side's worker."""

    client: str
    worker: str
    sides: Sides
    canvas: Any  # celery.canvas or taskq.canvas: the same names, the same shapes
    app: Any  # the starting client: Celery or TaskQ
    reader: Any  # the other side's client

    @property
    def queue(self) -> str:
        return self.sides.queues[self.worker]

    def s(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A signature of ``interop.<name>`` for the running side's queue."""
        if self.client == "celery":
            return self.sides.celery.signature(f"interop.{name}", args, kwargs, queue=self.queue)
        return taskq_canvas.signature(
            f"interop.{name}", args, kwargs, options={"queue": self.queue}, app=self.sides.taskq
        )

    def read_back(self, result: Any) -> Any:
        """The value of ``result`` as the starting client and as the other client read it
        (they must agree)."""
        value = result.get(timeout=TIMEOUT)
        assert self.reader.AsyncResult(result.id).get(timeout=TIMEOUT) == value
        return value

    def settle(self) -> None:
        """Let everything sent to the worker before run (its queue is FIFO; one process)."""
        for _ in range(2):
            assert self.s("add", 1, 1).delay().get(timeout=TIMEOUT) == 2


@pytest.fixture(params=["celery-to-taskq", "taskq-to-celery"])
def direction(request: pytest.FixtureRequest, sides: Sides) -> Iterator[Direction]:
    client, worker = request.param.split("-to-")
    apps = {"celery": sides.celery, "taskq": sides.taskq}
    canvas = celery_canvas if client == "celery" else taskq_canvas
    yield Direction(client, worker, sides, canvas, apps[client], apps[worker])
    for side, process in sides.workers.items():
        assert process.alive(), f"the {side} worker died\n{sides.logs()}"


def _counted_body(direction: Direction, key: str) -> Any:
    return direction.s("collect", key=key)


def _ran_once(direction: Direction, key: str) -> None:
    direction.settle()
    time.sleep(0.2)  # time for a duplicate body a worker had already taken to run
    assert direction.sides.redis.get(key) == "1"


# -- each primitive ---------------------------------------------------------------------------


def test_a_chain(direction: Direction) -> None:
    s = direction.s
    last = direction.canvas.chain(s("add", 1, 2), s("add", 3), s("add", 4)).apply_async()
    assert direction.read_back(last) == 10
    assert direction.read_back(last.parent) == 6


def test_a_group(direction: Direction) -> None:
    result = direction.canvas.group([direction.s("add", i, i) for i in range(6)]).apply_async()
    assert result.get(timeout=TIMEOUT) == [2 * i for i in range(6)]
    assert [direction.read_back(member) for member in result.results] == [2 * i for i in range(6)]


def test_a_chord_body_runs_once(direction: Direction, unique_name: str) -> None:
    header = [direction.s("add", i, i) for i in range(5)]
    result = direction.canvas.chord(header, _counted_body(direction, unique_name)).apply_async()
    expected = {"parts": [0, 2, 4, 6, 8], "side": direction.worker, "run": 1}
    assert direction.read_back(result) == expected
    _ran_once(direction, unique_name)


def test_a_group_piped_into_a_task(direction: Direction) -> None:
    s = direction.s
    workflow = direction.canvas.group(s("add", 1, 1), s("add", 2, 2)) | s("tsum")
    assert direction.read_back(workflow.apply_async()) == 6


def test_map_and_starmap(direction: Direction) -> None:
    canvas, s, app = direction.canvas, direction.s, direction.app
    mapped = canvas.xmap(s("tsum"), [[1, 2], [3, 4]], app=app, queue=direction.queue)
    starmapped = canvas.xstarmap(s("add"), [(1, 2), (3, 4)], app=app, queue=direction.queue)
    assert direction.read_back(mapped.apply_async()) == [3, 7]
    assert direction.read_back(starmapped.apply_async()) == [3, 7]


def test_chunks(direction: Direction) -> None:
    items = [(i, i) for i in range(7)]
    workflow = direction.canvas.chunks(direction.s("add"), items, 3, app=direction.app)
    # Celery's chunks drop their own options when they become a group: the queue goes here.
    result = workflow.apply_async(queue=direction.queue)
    assert result.get(timeout=TIMEOUT) == [[0, 2, 4], [6, 8, 10], [12]]
    assert [direction.read_back(part) for part in result.results] == [
        [0, 2, 4],
        [6, 8, 10],
        [12],
    ]


def test_a_replaced_step_in_a_chain(direction: Direction) -> None:
    s = direction.s
    last = direction.canvas.chain(s("add", 1, 1), s("replaced"), s("add", 5)).apply_async()
    assert direction.read_back(last) == 107


# -- nestings ---------------------------------------------------------------------------------


def test_a_chord_in_a_chain(direction: Direction) -> None:
    canvas, s = direction.canvas, direction.s
    inner = canvas.chord([s("add", 1), s("add", 2)], s("tsum"))
    last = canvas.chain(s("add", 1, 2), inner, s("add", 100)).apply_async()
    assert direction.read_back(last) == 109
    assert direction.read_back(last.parent) == 9


def test_a_chain_of_groups_and_a_group_of_chains(direction: Direction) -> None:
    canvas, s = direction.canvas, direction.s
    groups = canvas.chain(
        canvas.group(s("add", 1, 1), s("add", 2, 2)),
        canvas.group(s("tsum"), s("tsum")),
        s("tsum"),
    ).apply_async()
    chains = canvas.group(
        s("add", 1, 1) | s("add", 10), s("add", 2, 2) | s("add", 20) | s("add", 300)
    ).apply_async()
    assert direction.read_back(groups) == 12
    assert chains.get(timeout=TIMEOUT) == [12, 324]


def test_a_chord_whose_header_holds_chords(direction: Direction, unique_name: str) -> None:
    canvas, s = direction.canvas, direction.s
    header = [
        canvas.chord([s("add", 1, 1), s("add", 2, 2)], s("tsum")),
        canvas.chord([s("add", 3, 3)], s("tsum")),
        s("add", 4, 4),
    ]
    result = canvas.chord(header, _counted_body(direction, unique_name)).apply_async()
    outcome = direction.read_back(result)
    assert outcome == {"parts": [6, 6, 8], "side": direction.worker, "run": 1}
    _ran_once(direction, unique_name)


# -- failures ---------------------------------------------------------------------------------


def test_a_failing_header_task_fails_the_body_with_a_chord_error(
    direction: Direction, unique_name: str
) -> None:
    s = direction.s
    header = [s("add", 1, 1), s("fail", "boom"), s("add", 2, 2)]
    result = direction.canvas.chord(header, _counted_body(direction, unique_name)).apply_async()
    failed = result.parent.results[1]
    message = f"Dependency {failed.id} raised ValueError('boom')"
    for reader in (result, direction.reader.AsyncResult(result.id)):
        outcome = reader.get(timeout=TIMEOUT, propagate=False)
        assert reader.state == "FAILURE"
        assert type(outcome).__name__ == "ChordError"
        assert str(outcome) == message
    direction.settle()
    assert direction.sides.redis.get(unique_name) is None, "the body ran"


# -- a revoked header task, on either worker --------------------------------------------------


def _revoked_on(sides: Sides, worker: str) -> Callable[[str], bool]:
    """Whether ``worker`` lists the task id as revoked (it handles control requests in order:
    when it answers, an earlier revoke is applied)."""
    node = sides.workers[worker].node
    if worker == "taskq":

        def listed(task_id: str) -> bool:
            replies = sides.taskq.control.broadcast(
                "revoked", destination=[node], reply=True, timeout=5, limit=1
            )
            return task_id in replies[0][node]

        return listed

    def celery_lists(task_id: str) -> bool:
        replies = sides.celery.control.inspect(destination=[node], timeout=1).revoked()
        return replies is not None and task_id in replies[node]

    return celery_lists


@pytest.mark.parametrize("worker", ["celery", "taskq"])
def test_a_revoked_header_task_fails_the_body_alike_on_both_workers(
    sides: Sides, worker: str, unique_name: str
) -> None:
    """A Celery client's chord, a header task revoked before it runs: Celery's worker and
    taskq's fail the body with the same ``ChordError``, read by Celery."""
    queue = sides.queues[worker]
    app = sides.celery
    header = [app.signature("interop.add", (n, n), queue=queue) for n in (1, 2)]
    body = app.signature("interop.collect", kwargs={"key": unique_name}, queue=queue)
    workflow = celery_canvas.chord(header, body)
    frozen: Any = workflow.freeze()
    revoked = frozen.parent.results[1]
    app.control.revoke(revoked.id, destination=[sides.workers[worker].node])
    assert _revoked_on(sides, worker)(revoked.id)
    result: Any = workflow.apply_async()
    assert result.id == frozen.id
    outcome = result.get(timeout=TIMEOUT, propagate=False)
    assert type(outcome).__name__ == "ChordError"
    assert str(outcome) == f"Dependency {revoked.id} raised TaskRevokedError('revoked')"
    assert revoked.state == "REVOKED"
    wait_until(lambda: sides.redis.llen(queue) == 0, TIMEOUT)
    assert sides.redis.get(unique_name) is None, "the body ran"
