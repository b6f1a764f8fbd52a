"""Chains on the memory broker, each message run by the tracer in this thread."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq import TaskQ
from taskq.canvas import chain, chord, group
from taskq.result import AsyncResult, GroupResult
from taskq_protocol import states
from taskq_testing.inprocess import run_queued


@pytest.fixture
def t(app: TaskQ) -> Any:
    class Tasks:
        calls: ClassVar[list[Any]] = []

    found = Tasks()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="proj.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom", *args)

    @app.task(name="proj.record")
    def record(*args: Any) -> None:
        found.calls.append(args)

    @app.task(name="proj.on_error")
    def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
        found.calls.append(("errback", request.id, repr(exc)))

    @app.task(name="proj.on_error_old")
    def on_error_old(task_id: str) -> None:
        found.calls.append(("old", task_id))

    @app.task(name="proj.flaky", bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self: Any, value: int) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return value * 10

    found.add, found.tsum, found.boom, found.record = add, tsum, boom, record  # type: ignore[attr-defined]
    found.on_error, found.on_error_old, found.flaky = on_error, on_error_old, flaky  # type: ignore[attr-defined]
    return found


def test_a_chain_passes_each_result_on(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 2), t.add.s(3), t.add.s(4)).apply_async()
    assert len(run_queued(app)) == 3
    assert last.get(timeout=1) == 10
    assert last.parent is not None
    assert last.parent.get(timeout=1) == 6


def test_partial_args_go_to_the_first_step(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1), t.add.s(10))(5)
    run_queued(app)
    assert last.get(timeout=1) == 16


def test_an_immutable_step_ignores_the_result(app: TaskQ, t: Any) -> None:
    last = (t.add.s(1, 2) | t.add.si(100, 1) | t.add.s(1)).apply_async()
    run_queued(app)
    assert last.get(timeout=1) == 102


def test_nested_chains_are_spliced(app: TaskQ, t: Any) -> None:
    inner = t.add.s(1) | t.add.s(2)
    workflow = chain(t.add.s(0, 0), inner, chain(t.add.s(3), t.add.s(4)))
    assert [s.args for s in workflow.tasks] == [[0, 0], [1], [2], [3], [4]]
    last = workflow.apply_async()
    run_queued(app)
    assert last.get(timeout=1) == 10


def test_a_chain_from_a_generator(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(i) for i in range(1, 4))(0)
    run_queued(app)
    assert last.get(timeout=1) == 6


def test_a_failing_step_fails_the_rest_of_the_chain(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 2), t.boom.s(), t.add.s(4), t.add.s(5)).apply_async()
    run_queued(app)
    never = last.parent
    assert isinstance(never, AsyncResult)
    # The steps that never ran are stored as FAILURE with the error (Celery 5.7's _fail_chain),
    # so waiting on the last step ends instead of waiting for ever.
    for result in (last, never):
        assert result.state == states.FAILURE
        with pytest.raises(ValueError, match="boom"):
            result.get(timeout=1, follow_parents=False)
    assert app.transport.queue_length("celery") == 0


def test_chain_errbacks_run_once_and_callbacks_after_the_last_step(app: TaskQ, t: Any) -> None:
    ok = chain(t.add.s(1, 2), t.add.s(3))
    ok.link(t.record.s("after"))
    ok.link_error(t.on_error.s())
    ok.apply_async()
    run_queued(app)
    assert t.calls == [(6, "after")]
    t.calls.clear()
    failing = chain(t.add.s(1, 2), t.boom.s(), t.add.s(3))
    failing.link_error(t.on_error.s())
    failing.link_error(t.on_error_old.s())
    last = failing.apply_async()
    run_queued(app)
    boom_id = last.parent.id if last.parent else None
    assert t.calls == [
        ("errback", boom_id, "ValueError('boom', 3)"),
        ("old", boom_id),
    ]


def test_a_retry_inside_a_chain_continues_it(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 2), t.flaky.s(), t.add.s(1)).apply_async()
    run_queued(app)
    assert last.get(timeout=1) == 31


def test_a_chain_ending_in_a_group_gives_each_member_the_result(app: TaskQ, t: Any) -> None:
    result = chain(t.add.s(1, 1), group(t.add.s(10), t.add.s(20))).apply_async()
    run_queued(app)
    assert isinstance(result, GroupResult)
    assert result.get(timeout=1) == [12, 22]


def test_a_group_followed_by_a_task_becomes_a_chord(app: TaskQ, t: Any) -> None:
    workflow = chain(t.add.s(1, 2), group(t.add.s(1), t.add.s(2)), t.tsum.s(), t.add.s(100))
    assert isinstance(workflow.tasks[1], chord)
    last = workflow.apply_async()
    run_queued(app)
    assert last.get(timeout=1) == 109
    body = last.parent
    assert body is not None
    assert body.get(timeout=1) == 9
    assert isinstance(body.parent, GroupResult)
    assert body.parent.get(timeout=1) == [4, 5]


def test_a_chain_of_two_groups_makes_the_second_the_first_ones_body(app: TaskQ, t: Any) -> None:
    result = chain(group(t.add.s(1, 1), t.add.s(2, 2)), group(t.tsum.s(), t.tsum.s())).apply_async()
    run_queued(app)
    assert isinstance(result, GroupResult)
    assert result.get(timeout=1) == [6, 6]


def test_a_chord_in_the_middle_of_a_chain(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 2), chord([t.add.s(1), t.add.s(2)], t.tsum.s()), t.add.s(10))()
    run_queued(app)
    assert last.get(timeout=1) == 19


def test_a_step_after_a_chord_joins_its_body(t: Any) -> None:
    workflow = chord([t.add.s(1, 1)], t.tsum.s()) | t.add.s(1)
    assert isinstance(workflow, chord)
    assert isinstance(workflow.body, chain)


def test_every_step_names_the_next_as_its_child(app: TaskQ, t: Any) -> None:
    last = chain(t.add.s(1, 2), t.add.s(3), t.add.s(4)).apply_async()
    run_queued(app)
    second = last.parent
    assert second is not None
    assert second.parent is not None
    first = second.parent
    assert [child.id for child in first.children] == [second.id]
    assert [child.id for child in second.children] == [last.id]
    assert last.children == []


def test_steps_share_the_root_and_name_their_parent(app: TaskQ, t: Any, take: Any) -> None:
    last = chain(t.add.s(1, 2), t.add.s(3)).apply_async()
    first_message, _ = take(app)
    from taskq.execution import execute

    execute(app, first_message)
    second_message, _ = take(app)
    assert second_message.id == last.id
    assert second_message.headers.root_id == first_message.id
    assert second_message.headers.parent_id == first_message.id


def test_an_empty_chain_cannot_be_sent(t: Any) -> None:
    with pytest.raises(ValueError, match="empty chain"):
        chain().apply_async()
