"""Every primitive runs in this process with ``task_always_eager`` and with ``apply()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from taskq import TaskQ
from taskq.canvas import chain, chord, group
from taskq.result import EagerResult, GroupResult


@pytest.fixture
def eager(app: TaskQ) -> Iterator[TaskQ]:
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


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

    @app.task(name="proj.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    for task in (add, collect, record, boom):
        setattr(found, task.name.split(".")[1], task)
    return found


def _nothing_published(app: TaskQ) -> bool:
    return app.transport.queue_length("celery") == 0


def test_chain(eager: TaskQ, t: Any) -> None:
    result = chain(t.add.s(1, 2), t.add.s(3), t.add.s(4)).apply_async()
    assert isinstance(result, EagerResult)
    assert result.get() == 10
    assert result.parent is not None
    assert result.parent.get() == 6
    assert _nothing_published(eager)


def test_chain_link_runs_once_after_the_last_step(eager: TaskQ, t: Any) -> None:
    workflow = chain(t.add.s(1, 2), t.add.s(3))
    workflow.link(t.record.s("done"))
    assert workflow.apply_async().get() == 6
    assert t.calls == [(6, "done")]


def test_group(eager: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 1), t.add.s(2, 2)).apply_async()
    assert isinstance(result, GroupResult)
    assert result.get() == [2, 4]
    assert _nothing_published(eager)


def test_chord_and_nested_workflows(eager: TaskQ, t: Any) -> None:
    assert chord([t.add.s(1, 1), t.add.s(2, 2)], t.collect.s()).apply_async().get() == [2, 4]
    assert (group(t.add.s(1, 1), t.add.s(2, 2)) | t.collect.s()).delay().get() == [2, 4]
    nested = chain(t.add.s(1, 1), group(t.add.s(1), t.add.s(2)), t.collect.s())
    assert nested.apply_async().get() == [3, 4]
    assert _nothing_published(eager)


def test_chord_link_goes_to_the_body(eager: TaskQ, t: Any) -> None:
    chord([t.add.s(1, 1)], t.collect.s()).apply_async(link=t.record.s())
    assert t.calls == [([2],)]


def test_map_starmap_and_chunks(eager: TaskQ, t: Any) -> None:
    assert t.add.starmap([(1, 2), (3, 4)]).apply_async().get() == [3, 7]
    assert t.collect.map([[1], [2]]).apply_async().get() == [[1], [2]]
    assert t.add.chunks([(1, 1), (2, 2), (3, 3)], 2).apply_async().get() == [[2, 4], [6]]
    assert _nothing_published(eager)


def test_a_failing_step_propagates_when_asked(eager: TaskQ, t: Any) -> None:
    eager.conf.task_eager_propagates = True
    with pytest.raises(ValueError, match="boom"):
        chain(t.add.s(1, 1), t.boom.s(), t.add.s(1)).apply_async()


def test_apply_runs_each_primitive_here_without_always_eager(app: TaskQ, t: Any) -> None:
    assert chain(t.add.s(1, 2), t.add.s(3)).apply().get() == 6
    assert group(t.add.s(1, 1), t.add.s(2, 2)).apply().get() == [2, 4]
    assert chord([t.add.s(1, 1), t.add.s(2, 2)], t.collect.s()).apply().get() == [2, 4]
    assert t.add.starmap([(1, 2)]).apply().get() == [3]
    assert t.add.chunks([(1, 1), (2, 2)], 1).apply().get() == [[2], [4]]
    assert t.add.s(1).apply((2,)).get() == 3
    assert _nothing_published(app)
