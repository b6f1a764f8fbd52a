# pyright: strict
"""Scenarios that cross between a Celery worker and a taskq worker on one broker, any broker.

Each broker's interop tests start the two workers (see :mod:`taskq_testing.worker_processes`)
and hand them over as a :class:`CrossedWorkers`; a scenario drives both sides through their
public APIs and asserts what must hold on every broker. Celery is driven through the app it is
given (signatures joined with ``|``), so nothing here imports Celery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from taskq import TaskQ
from taskq import signature as taskq_signature

from .worker_processes import WorkerProcess

__all__ = [
    "CrossedWorkers",
    "assert_alive",
    "chain_from_celery",
    "chain_from_taskq",
    "parse_eta",
    "pings_cross",
]

Side = Literal["taskq", "celery"]


class CrossedWorkers(Protocol):
    """Both apps on one broker, and a worker of each consuming a queue of its own."""

    @property
    def taskq(self) -> TaskQ: ...

    @property
    def celery(self) -> Any: ...  # a celery.Celery

    @property
    def taskq_queue(self) -> str: ...

    @property
    def celery_queue(self) -> str: ...

    @property
    def taskq_worker(self) -> WorkerProcess: ...

    @property
    def celery_worker(self) -> WorkerProcess: ...

    def logs(self) -> str:
        """Both workers' recent output, for a failing assertion."""
        ...


def assert_alive(setup: CrossedWorkers) -> None:
    """Both workers still run (a test that used them fails with their logs otherwise)."""
    assert setup.taskq_worker.alive(), setup.logs()
    assert setup.celery_worker.alive(), setup.logs()


def parse_eta(value: Any) -> datetime:
    """An ``eta`` as a task saw it in its request: Celery gives a string or a datetime."""
    eta = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(eta, datetime), value
    return eta


def chain_from_celery(setup: CrossedWorkers, timeout: float) -> None:
    """A Celery chain of the ``interop.tag`` task, on the taskq, Celery and taskq workers in
    turn: each step's result is readable by both sides."""
    app = setup.celery
    steps: Any = (
        app.signature("interop.tag", ([], "one"), queue=setup.taskq_queue)
        | app.signature("interop.tag", ("two",), queue=setup.celery_queue)
        | app.signature("interop.tag", ("three",), queue=setup.taskq_queue)
    )
    result = steps.apply_async()
    expected = ["one@taskq", "two@celery", "three@taskq"]
    assert result.get(timeout=timeout) == expected, setup.logs()
    assert result.parent.get(timeout=timeout) == expected[:2]
    assert setup.taskq.AsyncResult(result.id).get(timeout=timeout) == expected
    first = setup.taskq.AsyncResult(result.parent.parent.id)
    assert first.get(timeout=timeout) == expected[:1]


def chain_from_taskq(setup: CrossedWorkers, timeout: float, first: Side = "taskq") -> None:
    """A taskq chain of ``interop.tag`` over both workers in turn, starting on ``first``:
    each step's result is readable by both sides."""
    app = setup.taskq
    other: Side = "celery" if first == "taskq" else "taskq"
    order = [first, other, first]
    queues = {"taskq": setup.taskq_queue, "celery": setup.celery_queue}
    steps = (
        taskq_signature("interop.tag", ([], "one"), options={"queue": queues[order[0]]}, app=app)
        | taskq_signature("interop.tag", ("two",), options={"queue": queues[order[1]]}, app=app)
        | taskq_signature("interop.tag", ("three",), options={"queue": queues[order[2]]}, app=app)
    )
    result = steps.apply_async()
    expected = [f"{step}@{side}" for step, side in zip(("one", "two", "three"), order, strict=True)]
    assert result.get(timeout=timeout) == expected, setup.logs()
    assert setup.celery.AsyncResult(result.id).get(timeout=timeout) == expected
    assert result.parent is not None
    assert setup.celery.AsyncResult(result.parent.id).get(timeout=timeout) == expected[:2]


def pings_cross(setup: CrossedWorkers, timeout: float) -> None:
    """Each side's ``control.ping`` is answered by the other side's worker, and by it alone."""
    celery_node, taskq_node = setup.celery_worker.node, setup.taskq_worker.node
    from_taskq = setup.taskq.control.ping(destination=[celery_node], timeout=timeout)
    assert from_taskq == [{celery_node: {"ok": "pong"}}], setup.logs()
    from_celery = setup.celery.control.ping(destination=[taskq_node], timeout=timeout)
    assert from_celery == [{taskq_node: {"ok": "pong"}}], setup.logs()
