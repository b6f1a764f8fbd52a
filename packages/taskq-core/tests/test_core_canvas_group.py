"""Groups: one publish for every member, the GroupResult, and reading results together."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import chain, group
from taskq.result import AsyncResult, GroupResult, ResultSet
from taskq_testing.inprocess import run_queued


@pytest.fixture
def t(app: TaskQ) -> Any:
    class Tasks:
        pass

    found = Tasks()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="proj.fan_out", bind=True)
    def fan_out(self: Any, n: int) -> str:
        result = group(add.s(i, i) for i in range(n)).apply_async()
        result.save()
        return result.id

    found.add, found.boom, found.fan_out = add, boom, fan_out  # type: ignore[attr-defined]
    return found


class PublishCounter:
    """Counts the transport's publish calls and the messages in them."""

    def __init__(self, app: TaskQ) -> None:
        self.calls = 0
        self.messages = 0
        transport = app.transport
        publish, publish_many = transport.publish, transport.publish_many

        def counted_publish(queue: str, envelope: Any, *, eta: float | None = None) -> None:
            self.calls += 1
            self.messages += 1
            publish(queue, envelope, eta=eta)

        def counted_publish_many(items: Any) -> None:
            self.calls += 1
            self.messages += len(items)
            publish_many(items)

        transport.publish = counted_publish  # type: ignore[method-assign]
        transport.publish_many = counted_publish_many  # type: ignore[method-assign]


def test_every_member_goes_out_in_one_publish(app: TaskQ, t: Any, take: Any) -> None:
    counter = PublishCounter(app)
    result = group(t.add.s(i, i) for i in range(50)).apply_async()
    assert (counter.calls, counter.messages) == (1, 50)
    messages = [take(app)[0] for _ in range(50)]
    assert [m.headers.group for m in messages] == [result.id] * 50
    assert [m.headers.group_index for m in messages] == list(range(50))
    assert [m.id for m in messages] == [r.id for r in result.results]


def test_a_group_returns_results_in_order(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 1), t.add.s(2, 2), t.add.s(3, 3)).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [2, 4, 6]
    assert result.join(timeout=1) == [2, 4, 6]
    assert (result.ready(), result.successful(), result.completed_count()) == (True, True, 3)


def test_partial_args_reach_every_member(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1), t.add.s(2))(10)
    run_queued(app)
    assert result.get(timeout=1) == [11, 12]


def test_nested_groups_are_flattened(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 1), group(t.add.s(2, 2), t.add.s(3, 3))).apply_async()
    assert len(result.results) == 3
    run_queued(app)
    assert result.get(timeout=1) == [2, 4, 6]


def test_a_group_of_chains(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 2) | t.add.s(3), chain(t.add.s(4, 5), t.add.s(6))).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [6, 15]
    first = result.results[0]
    assert isinstance(first, AsyncResult)
    assert first.parent is not None


def test_an_empty_group_has_an_empty_result(app: TaskQ) -> None:
    result = group([], app=app).apply_async()
    assert isinstance(result, GroupResult)
    assert result.results == []
    assert result.get(timeout=1) == []


def test_a_failed_member_raises_from_get_unless_told_not_to(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 1), t.boom.s()).apply_async()
    run_queued(app)
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=1)
    values = result.get(timeout=1, propagate=False)
    assert values[0] == 2
    assert isinstance(values[1], ValueError)
    assert result.failed()


def test_skew_spreads_countdowns(t: Any) -> None:
    members = group(t.add.s(i, i) for i in range(3)).skew(start=1, step=2)
    assert [m.options["countdown"] for m in members.tasks] == [1, 3, 5]


# -- GroupResult and ResultSet -----------------------------------------------------------------


def test_a_saved_group_restores_from_its_id(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(1, 1), t.add.s(2, 2)).apply_async()
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None
    assert restored == result
    run_queued(app)
    assert restored.get(timeout=1) == [2, 4]
    restored.delete()
    assert GroupResult.restore(result.id, app=app) is None


def test_a_group_sent_from_a_task_is_its_child(app: TaskQ, t: Any) -> None:
    parent = t.fan_out.delay(3)
    run_queued(app)
    group_id = parent.get(timeout=1)
    [child] = parent.children
    assert isinstance(child, GroupResult)
    assert child.id == group_id
    assert child.get(timeout=1) == [0, 2, 4]
    restored = GroupResult.restore(group_id, app=app)
    assert restored is not None
    assert restored.get(timeout=1) == [0, 2, 4]


def test_join_native_waits_for_every_id_in_one_backend_call(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(i, i) for i in range(5)).apply_async()
    run_queued(app)
    backend = app.backend
    waits: list[list[str]] = []
    real_wait = backend.wait

    def counted_wait(task_ids: Any, timeout: Any) -> Any:
        waits.append(list(task_ids))
        return real_wait(task_ids, timeout)

    backend.wait = counted_wait  # type: ignore[method-assign]
    assert ResultSet(result.results, app=app).join_native(timeout=1) == [0, 2, 4, 6, 8]
    assert waits == [[r.id for r in result.results]]


def test_join_collects_in_order_and_reports_each_to_a_callback(app: TaskQ, t: Any) -> None:
    result = group(t.add.s(i, 1) for i in range(3)).apply_async()
    run_queued(app)
    seen: list[tuple[str, Any]] = []
    assert result.join(timeout=1, callback=lambda i, v: seen.append((i, v))) == []
    assert seen == [(r.id, v) for r, v in zip(result.results, [1, 2, 3], strict=True)]


def test_get_inside_a_task_is_refused(app: TaskQ, t: Any) -> None:
    @app.task(name="proj.waits")
    def waits() -> Any:
        return group(t.add.s(1, 1)).apply_async().get(timeout=1)

    result = waits.delay()
    run_queued(app)
    with pytest.raises(RuntimeError, match=r"Never call result\.get"):
        result.get(timeout=1)
