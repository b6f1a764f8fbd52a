"""Task.replace: the replacement takes over the task's id, its chain, links and chord place."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq import TaskQ
from taskq.canvas import chain, chord, group
from taskq.exceptions import ImproperlyConfigured
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

    @app.task(name="proj.collect")
    def collect(values: list[Any]) -> list[Any]:
        return values

    @app.task(name="proj.record")
    def record(*args: Any) -> None:
        found.calls.append(args)

    @app.task(name="proj.by_task", bind=True)
    def by_task(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    @app.task(name="proj.by_group", bind=True)
    def by_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(name="proj.by_chain", bind=True)
    def by_chain(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 1) | add.s(1000))

    @app.task(name="proj.twice", bind=True)
    def twice(self: Any, x: int) -> Any:
        if self.request.replaced_task_nesting < 2:
            return self.replace(twice.s(x + 1))
        found.calls.append(("nesting", self.request.replaced_task_nesting))
        return x

    for task in (add, collect, record, by_task, by_group, by_chain, twice):
        setattr(found, task.name.split(".")[1], task)
    return found


def test_the_replacement_keeps_the_id_and_the_run_stores_nothing(app: TaskQ, t: Any) -> None:
    result = t.by_task.delay(1)
    executions = run_queued(app)
    assert [e.state for e in executions] == [states.IGNORED, states.SUCCESS]
    assert executions[1].name == "proj.add"
    assert result.get(timeout=1) == 101


def test_the_chain_goes_on_after_the_replacement(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 1), t.by_task.s(), t.add.s(5)).apply_async()
    run_queued(app)
    assert last.get(timeout=1) == 107


def test_callbacks_move_to_the_replacement(app: TaskQ, t: Any) -> None:
    t.by_task.apply_async((1,), link=t.record.s("after"))
    run_queued(app)
    assert t.calls == [(101, "after")]


def test_a_replacement_counts_as_the_chord_part(app: TaskQ, t: Any) -> None:
    result = chord([t.by_task.s(1), t.add.s(2, 2)], t.collect.s()).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [101, 4]


def test_a_group_replacement_returns_the_list_through_accumulate(app: TaskQ, t: Any) -> None:
    last = chain(t.by_group.s(10), t.collect.s()).apply_async()
    run_queued(app)
    assert last.get(timeout=1) == [11, 12]


def test_a_chain_replacement(app: TaskQ, t: Any) -> None:
    result = (t.by_chain.s(1) | t.add.s(1)).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == 1003


def test_replaced_task_nesting_counts_replacements(app: TaskQ, t: Any) -> None:
    result = t.twice.delay(0)
    messages: list[int] = []

    def seen(message: Any) -> None:
        messages.append(message.headers.replaced_task_nesting)

    run_queued(app, before=seen)
    assert result.get(timeout=1) == 2
    assert messages == [0, 1, 2]
    assert t.calls == [("nesting", 2)]


def test_eager_replacement_returns_the_value(app: TaskQ, t: Any) -> None:
    assert t.by_task.apply((5,)).get() == 105
    assert t.by_group.apply((5,)).get() == [6, 7]


def test_a_signature_in_a_chord_cannot_replace(app: TaskQ, t: Any) -> None:
    @app.task(name="proj.bad", bind=True)
    def bad(self: Any) -> Any:
        return self.replace(t.add.s(1, 1).set(chord=t.collect.s()))

    result = bad.delay()
    run_queued(app)
    with pytest.raises(Exception, match="part of a chord") as info:
        result.get(timeout=1)
    assert type(info.value).__name__ == ImproperlyConfigured.__name__


def test_the_replacement_message_is_sent_under_the_replaced_id(app: TaskQ, t: Any) -> None:
    result = t.by_task.delay(1)
    [first] = app.transport.fetch(["celery"], 1, 0.0)
    app.transport.ack([first])
    from taskq.execution import execute

    execute(app, decode_delivery(first))
    [replacement] = app.transport.fetch(["celery"], 1, 0.0)
    message = decode_delivery(replacement)
    assert (message.name, message.id, message.args) == ("proj.add", result.id, [1, 100])
    assert message.headers.replaced_task_nesting == 1
