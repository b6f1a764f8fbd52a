"""map, starmap and chunks: Celery's built-in tasks, registered with every app."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import chunks, signature
from taskq.canvas.builtins import BUILTIN_TASKS
from taskq.result import GroupResult
from taskq_testing.inprocess import run_queued


@pytest.fixture
def t(app: TaskQ) -> Any:
    class Tasks:
        pass

    found = Tasks()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.double")
    def double(x: int) -> int:
        return x * 2

    found.add, found.double = add, double  # type: ignore[attr-defined]
    return found


def test_every_app_registers_celerys_builtin_canvas_tasks(app: TaskQ) -> None:
    assert set(BUILTIN_TASKS) <= set(app.tasks)
    assert set(BUILTIN_TASKS) <= set(TaskQ("another", broker="memory://x").tasks)


def test_map_is_one_message_calling_the_task_for_each_item(app: TaskQ, t: Any, take: Any) -> None:
    result = t.double.map([1, 2, 3]).apply_async()
    message, _ = take(app)
    assert message.name == "celery.map"
    assert message.kwargs == {"task": dict(t.double.s()), "it": [1, 2, 3]}
    from taskq.execution import execute

    execute(app, message)
    assert result.get(timeout=1) == [2, 4, 6]


def test_starmap_unpacks_each_item(app: TaskQ, t: Any) -> None:
    result = t.add.starmap([(1, 2), (3, 4)]).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [3, 7]


def test_chunks_are_a_group_of_starmaps(app: TaskQ, t: Any) -> None:
    result = t.add.chunks([(i, i) for i in range(5)], 2).apply_async()
    assert isinstance(result, GroupResult)
    assert len(result.results) == 3
    run_queued(app)
    assert result.get(timeout=1) == [[0, 2], [4, 6], [8]]


def test_a_map_is_routed_as_the_task_it_maps(app: TaskQ, t: Any, take: Any) -> None:
    app.conf.task_routes = {"proj.double": {"queue": "doubles"}}
    t.double.map([1]).apply_async()
    message, envelope = take(app, "doubles")
    assert message.name == "celery.map"
    assert envelope.routing_key == "doubles"


def test_a_map_signature_from_celery_runs_here(app: TaskQ, t: Any) -> None:
    # What a Celery client's ``add.starmap([...])`` publishes, as a signature dict.
    raw = {
        "task": "celery.starmap",
        "args": [],
        "kwargs": {"task": dict(t.add.s()), "it": [[1, 1], [2, 2]]},
        "options": {},
        "subtask_type": "xstarmap",
        "immutable": True,
    }
    sig = signature(raw, app=app)
    result = sig.apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [2, 4]


def test_the_chunks_builtin_sends_the_parts(app: TaskQ, t: Any) -> None:
    sent = app.send_task("celery.chunks", (), {"task": dict(t.add.s()), "it": [[1, 1]], "n": 1})
    run_queued(app)
    group_tuple = sent.get(timeout=1)
    assert group_tuple[1] is not None  # the parts' GroupResult, as its result tuple
    assert isinstance(chunks(t.add.s(), [[1, 1]], 1).group().tasks[0]["task"], str)
