"""Callbacks and errbacks as Celery's worker runs them, and the children they leave behind."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq import TaskQ
from taskq.canvas import chain, signature
from taskq.execution import mark_failed
from taskq.result import AsyncResult, GroupResult
from taskq_protocol import states
from taskq_testing.inprocess import decode_delivery, run_queued


@pytest.fixture
def t(app: TaskQ) -> Any:
    class Tasks:
        calls: ClassVar[list[Any]] = []

    found = Tasks()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="proj.record")
    def record(*args: Any) -> None:
        found.calls.append(args)

    @app.task(name="proj.new_style")
    def new_style(request: Any, exc: BaseException, traceback: str | None, tag: str) -> None:
        found.calls.append(
            ("new", request.id, type(exc).__name__, tag, "ValueError" in (traceback or ""))
        )

    @app.task(name="proj.old_style")
    def old_style(task_id: str, tag: str) -> None:
        # One argument left once the signature binds ``tag``: old style (Celery's arity rule).
        found.calls.append(("old", task_id, tag))

    @app.task(name="proj.spawns")
    def spawns() -> str:
        add.delay(1, 1)
        add.s(2, 2).apply_async()
        return "sent"

    for task in (add, boom, record, new_style, old_style, spawns):
        setattr(found, task.name.split(".")[1], task)
    return found


def test_one_callback_is_sent_alone_several_as_one_group(app: TaskQ, t: Any) -> None:
    single = t.add.apply_async((1, 1), link=t.record.s("one"))
    several = t.add.apply_async((2, 2), link=[t.record.s("a"), t.record.si("b")])
    run_queued(app)
    assert set(t.calls) == {(2, "one"), (4, "a"), ("b",)}
    [alone] = single.children
    assert isinstance(alone, AsyncResult)
    assert not isinstance(alone, GroupResult)
    [together] = several.children
    assert isinstance(together, GroupResult)
    assert len(together.results) == 2


def test_new_and_old_style_errbacks(app: TaskQ, t: Any) -> None:
    result = t.boom.apply_async(
        link_error=[t.new_style.s("tag"), t.old_style.s("x"), signature("elsewhere.eb")]
    )
    executions = run_queued(app)
    # The new-style one ran inside the failed task; the old-style ones were sent as tasks.
    assert ("new", result.id, "ValueError", "tag", True) in t.calls
    assert ("old", result.id, "x") in t.calls
    # A task not registered here is old style too: sent, for a worker that has it.
    assert [e.name for e in executions] == ["proj.boom", "proj.old_style", "elsewhere.eb"]
    assert app.transport.queue_length("celery") == 0


def test_errbacks_run_here_for_an_eager_task(app: TaskQ, t: Any) -> None:
    result = t.boom.apply(link_error=[t.new_style.s("eager"), t.old_style.s("")])
    assert result.state == states.FAILURE
    assert ("new", result.id, "ValueError", "eager", True) in t.calls
    assert ("old", result.id, "") in t.calls
    assert app.transport.queue_length("celery") == 0


def test_a_lost_worker_runs_errbacks_and_fails_the_chain(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 1), t.add.s(2)).apply_async(link_error=t.old_style.s(""))
    [delivery] = app.transport.fetch(["celery"], 1, 0.0)
    app.transport.ack([delivery])
    message = decode_delivery(delivery)
    mark_failed(app, message, RuntimeError("worker lost"))
    run_queued(app)
    assert ("old", message.id, "") in t.calls
    with pytest.raises(RuntimeError, match="worker lost"):
        app.AsyncResult(last.id).get(timeout=1)


def test_subtasks_sent_by_a_task_are_its_children(app: TaskQ, t: Any) -> None:
    result = t.spawns.delay()
    run_queued(app)
    assert result.get(timeout=1) == "sent"
    children = result.children
    assert len(children) == 2
    assert [child.get(timeout=1) for child in children] == [2, 4]
    assert [node.id for _, node in result.iterdeps()] == [result.id, *(c.id for c in children)]
    meta = app.backend.get(result.id)
    assert meta is not None
    assert meta.children == [[[c.id, None], None] for c in children]


def test_an_eager_task_records_no_children(app: TaskQ, t: Any) -> None:
    app.conf.task_always_eager = True
    try:
        result = t.spawns.apply()
    finally:
        app.conf.task_always_eager = False
    assert result.get() == "sent"
    assert result.children == []
