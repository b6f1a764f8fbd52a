"""Chords: the body runs once with every header result, fails clearly when a part fails, and
is sent even when the worker completing the chord dies before sending it."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq import TaskQ, contracts
from taskq.canvas import chain, chord, group
from taskq.exceptions import ChordError, TaskRevokedError
from taskq.execution import execute, mark_revoked
from taskq.result import GroupResult
from taskq_protocol import TaskMessage
from taskq_testing.inprocess import decode_delivery, run_queued


@pytest.fixture
def t(app: TaskQ) -> Any:
    class Tasks:
        calls: ClassVar[list[Any]] = []

    found = Tasks()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.tsum")
    def tsum(values: list[Any]) -> int:
        return sum(v if isinstance(v, int) else sum(v) for v in values)

    @app.task(name="proj.collect")
    def collect(values: list[Any]) -> list[Any]:
        return values

    @app.task(name="proj.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="proj.on_error")
    def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
        found.calls.append(("new", request.id, type(exc).__name__, str(exc)))

    @app.task(name="proj.on_error_old")
    def on_error_old(task_id: str) -> None:
        found.calls.append(("old", task_id))

    for task in (add, tsum, collect, boom, on_error, on_error_old):
        setattr(found, task.name.split(".")[1], task)
    return found


def queued(app: TaskQ) -> list[TaskMessage]:
    """Every message waiting, taken off the broker (acked), in order."""
    taken: list[TaskMessage] = []
    while deliveries := app.transport.fetch(["celery"], 100, 0.0):
        app.transport.ack(deliveries)
        taken.extend(decode_delivery(d) for d in deliveries)
    return taken


def test_the_body_gets_every_result_in_header_order(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(i, i) for i in range(5)], t.collect.s()).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [0, 2, 4, 6, 8]
    assert isinstance(result.parent, GroupResult)
    assert result.parent.get(timeout=1) == [0, 2, 4, 6, 8]


def test_header_tasks_finishing_out_of_order_keep_header_order(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(i, i) for i in range(4)], t.collect.s()).apply_async()
    for message in reversed(queued(app)):
        execute(app, message)
    run_queued(app)
    assert result.get(timeout=1) == [0, 2, 4, 6]


def test_the_size_is_set_before_any_header_task_is_published(app: TaskQ, t: Any) -> None:
    events: list[str] = []
    backend, transport = app.backend, app.transport
    real_size, real_many = backend.set_chord_size, transport.publish_many

    def set_chord_size(group_id: str, size: int) -> None:
        events.append(f"size {size}")
        real_size(group_id, size)

    def publish_many(items: Any) -> None:
        events.append(f"publish {len(items)}")
        real_many(items)

    backend.set_chord_size = set_chord_size  # type: ignore[method-assign]
    transport.publish_many = publish_many  # type: ignore[method-assign]
    chord([t.add.s(1, 1), t.add.s(2, 2), t.add.s(3, 3)], t.tsum.s()).apply_async()
    assert events == ["size 3", "publish 3"]


def test_group_piped_into_a_task_is_a_chord(app: TaskQ, t: Any) -> None:
    workflow = group(t.add.s(1, 1), t.add.s(2, 2)) | t.tsum.s()
    assert isinstance(workflow, chord)
    result = workflow.apply_async()
    run_queued(app)
    assert result.get(timeout=1) == 6


def test_chord_header_then_body_call_form(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)])(t.tsum.s())
    run_queued(app)
    assert result.get(timeout=1) == 6


def test_an_empty_header_calls_the_body_at_once_with_an_empty_list(app: TaskQ, t: Any) -> None:
    result = chord([], t.collect.s()).apply_async()
    [message] = queued(app)
    assert (message.name, message.args) == ("proj.collect", [[]])
    execute(app, message)
    assert result.get(timeout=1) == []


def test_a_failed_part_fails_the_body_with_a_chord_error_naming_it(app: TaskQ, t: Any) -> None:
    workflow = chord([t.add.s(1, 1), t.boom.s(), t.add.s(2, 2)], t.tsum.s())
    workflow.link_error(t.on_error.s())
    workflow.link_error(t.on_error_old.s())
    result = workflow.apply_async()
    run_queued(app)
    failed_part = result.parent.results[1]  # type: ignore[union-attr]
    body = app.AsyncResult(result.id)
    with pytest.raises(ChordError) as info:
        body.get(timeout=1)
    assert str(info.value) == f"Dependency {failed_part.id} raised ValueError('boom')"
    assert ("new", result.id, "ChordError", str(info.value)) in t.calls
    assert ("old", result.id) in t.calls


def test_a_revoked_part_fails_the_body(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()).apply_async()
    first, second = queued(app)
    execute(app, first)
    mark_revoked(app, second, "revoked")
    with pytest.raises(ChordError, match=rf"Dependency {second.id} raised TaskRevokedError"):
        app.AsyncResult(result.id).get(timeout=1)
    assert isinstance(app.AsyncResult(second.id).result, TaskRevokedError)


def test_a_header_task_delivered_twice_counts_once(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.collect.s()).apply_async()
    first, second = queued(app)
    execute(app, first)
    execute(app, first)  # redelivered: runs again, counted once
    assert queued(app) == [], "the chord completed on a duplicate"
    execute(app, second)
    run_queued(app)
    assert result.get(timeout=1) == [2, 4]
    execute(app, first)  # a late duplicate after the chord is done sends nothing
    execute(app, second)
    assert queued(app) == []


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, nothing catches it."""


def _kill_when_publishing(app: TaskQ, task_name: str) -> list[str]:
    """Make the next publish of ``task_name`` kill the 'worker' once; returns the log."""
    log: list[str] = []
    publisher = app.publisher
    real_send = publisher.send

    def send(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == task_name and not log:
            log.append("killed")
            raise WorkerKilled
        return real_send(name, *args, **kwargs)

    publisher.send = send  # type: ignore[method-assign]
    return log


def test_a_worker_killed_before_sending_the_body_leaves_it_to_the_redelivery(
    app: TaskQ, t: Any
) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.collect.s()).apply_async()
    first, last = queued(app)
    execute(app, first)
    log = _kill_when_publishing(app, "proj.collect")
    with pytest.raises(WorkerKilled):
        execute(app, last)  # completes the chord, dies before the body is published
    assert log == ["killed"]
    assert queued(app) == []
    # Another part's duplicate does not take over a live claim ...
    execute(app, first)
    assert queued(app) == []
    # ... but the killed task's message, delivered again (acks_late), sends the body.
    execute(app, last)
    [body] = queued(app)
    assert body.id == result.id, "the body is sent under the id it was frozen with"
    execute(app, body)
    assert result.get(timeout=1) == [2, 4]
    execute(app, last)  # done now: nothing more
    assert queued(app) == []


def test_once_the_claim_expires_any_part_sends_the_body(
    app: TaskQ, t: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contracts, "CHORD_CLAIM_LEASE", 0.05)
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.collect.s()).apply_async()
    first, last = queued(app)
    execute(app, first)
    _kill_when_publishing(app, "proj.collect")
    with pytest.raises(WorkerKilled):
        execute(app, last)
    import time

    time.sleep(0.1)
    execute(app, first)  # a duplicate of another part, after the lease
    run_queued(app)
    assert result.get(timeout=1) == [2, 4]


def test_a_chord_whose_header_holds_a_chord(app: TaskQ, t: Any) -> None:
    inner = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    result = chord([inner, t.add.s(3, 3)], t.collect.s()).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [6, 6]


def test_a_failing_inner_chord_fails_the_outer_one(app: TaskQ, t: Any) -> None:
    inner = chord([t.add.s(1, 1), t.boom.s()], t.tsum.s())
    result = chord([inner, t.add.s(3, 3)], t.collect.s()).apply_async()
    run_queued(app)
    with pytest.raises(ChordError, match=r"Dependency .* raised ChordError"):
        app.AsyncResult(result.id).get(timeout=1)


def test_a_group_in_the_header_is_flattened_in_order(app: TaskQ, t: Any) -> None:
    result = chord([group(t.add.s(1, 1), t.add.s(2, 2)), t.add.s(3, 3)], t.collect.s())()
    run_queued(app)
    assert result.get(timeout=1) == [2, 4, 6]


def test_a_header_chain_ending_in_a_group_gives_the_body_a_nested_list(app: TaskQ, t: Any) -> None:
    header = [t.add.s(1, 1), t.add.s(2, 2) | group(t.add.s(3), t.add.s(4))]
    result = chord(header, t.collect.s()).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [2, [7, 8]]


def test_a_chain_in_the_header_counts_by_its_last_step(app: TaskQ, t: Any) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2) | t.add.s(10)], t.collect.s()).apply_async()
    run_queued(app)
    assert result.get(timeout=1) == [2, 14]


def test_a_chain_body_and_a_group_body(app: TaskQ, t: Any) -> None:
    chained = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s() | t.add.s(100)).apply_async()
    grouped = chord([t.add.s(1, 1), t.add.s(2, 2)], group(t.tsum.s(), t.collect.s()))()
    run_queued(app)
    assert chained.get(timeout=1) == 106
    assert grouped.get(timeout=1) == [6, [2, 4]]


def test_a_failed_header_fails_every_member_of_a_group_body(app: TaskQ, t: Any) -> None:
    result = chord([t.boom.s()], group(t.tsum.s(), t.collect.s())).apply_async()
    run_queued(app)
    assert isinstance(result, GroupResult)
    for member in result.results:
        with pytest.raises(ChordError):
            app.AsyncResult(member.id).get(timeout=1)


def test_a_failed_header_fails_the_chain_after_the_chord(app: TaskQ, t: Any) -> None:
    last = chain(chord([t.boom.s()], t.tsum.s()), t.add.s(1), t.add.s(2)).apply_async()
    run_queued(app)
    with pytest.raises(ChordError):
        app.AsyncResult(last.id).get(timeout=1)


def test_options_reach_the_body_and_countdown_delays_the_header(app: TaskQ, t: Any) -> None:
    chord([t.add.s(1, 1)], t.collect.s()).apply_async(priority=5, countdown=30)
    assert queued(app) == [], "the header waits for its countdown"
    assert app.transport.queue_length("celery") == 1
