"""The tracer: what running one message stores, sends, signals, and how it is settled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import TaskQ, signals
from taskq.exceptions import Ignore, Reject
from taskq.execution import ACK, DEAD_LETTER, REQUEUE, execute, mark_failed, mark_revoked
from taskq_protocol import TaskMessage, states


def run(app: TaskQ, take: Any, queue: str = "celery") -> Any:
    msg, envelope = take(app, queue)
    return execute(app, msg, hostname="w@test", delivery_info={"routing_key": envelope.routing_key})


def test_success_stores_the_result_and_fires_signals(app: TaskQ, take: Any) -> None:
    seen: list[str] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    def on_success(sender: Any = None, result: Any = None, **kw: Any) -> None:
        seen.append(f"success {result}")

    def on_prerun(sender: Any = None, task_id: Any = None, **kw: Any) -> None:
        seen.append("prerun")

    signals.task_success.connect(on_success)
    signals.task_prerun.connect(on_prerun)
    try:
        sent = add.delay(2, 3)
        outcome = run(app, take)
    finally:
        signals.task_success.disconnect(on_success)
        signals.task_prerun.disconnect(on_prerun)
    assert (outcome.state, outcome.settle) == (states.SUCCESS, ACK)
    assert sent.get(timeout=1) == 5
    assert seen == ["prerun", "success 5"]


def test_a_chain_sends_its_next_step_with_the_result(app: TaskQ, take: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    final = (add.s(1, 2) | add.s(10) | add.s(100)).apply_async()
    for _ in range(3):
        run(app, take)
    assert final.get(timeout=1) == 113
    assert final.parent is not None
    assert final.parent.get(timeout=1) == 13
    first = final.parent.parent
    assert first is not None
    middle, _ = final.parent, None
    meta = app.backend.get(first.id)
    assert meta is not None
    assert meta.children == [[[middle.id, None], None]]


def test_callbacks_get_the_result_unless_immutable(app: TaskQ, take: Any) -> None:
    got: list[Any] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def record(*args: Any) -> None:
        got.append(args)

    add.apply_async((1, 1), link=[record.s("tag"), record.si("fixed")])
    for _ in range(3):
        run(app, take)
    assert sorted(got, key=repr) == [("fixed",), (2, "tag")]


def test_failure_stores_the_exception_and_runs_errbacks(app: TaskQ, take: Any) -> None:
    errors: list[Any] = []

    @app.task
    def boom(x: int) -> None:
        raise ValueError("bad", x)

    @app.task
    def old_style(task_id: str) -> None:
        errors.append(("old", task_id))

    @app.task
    def new_style(request: Any, exc: BaseException, traceback: str) -> None:
        errors.append(("new", request.id, repr(exc), "ValueError" in traceback))

    sent = boom.apply_async((7,), link_error=[old_style.s(), new_style.s()])
    outcome = run(app, take)
    assert (outcome.state, outcome.settle) == (states.FAILURE, ACK)
    with pytest.raises(ValueError, match="bad") as info:
        sent.get(timeout=1)
    assert info.value.args == ("bad", 7)
    assert "ValueError" in (sent.traceback or "")
    run(app, take)  # the old-style errback was sent as a message
    assert ("new", sent.id, "ValueError('bad', 7)", True) in errors
    assert ("old", sent.id) in errors


def test_retry_sends_the_same_task_again_later(app: TaskQ, take: Any) -> None:
    @app.task(bind=True, max_retries=2, default_retry_delay=0.05)
    def flaky(self: Any) -> str:
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("down"))
        return f"ok after {self.request.retries}"

    sent = flaky.delay()
    first = run(app, take)
    assert (first.state, first.settle) == (states.RETRY, ACK)
    meta = app.backend.get(sent.id)
    assert meta is not None
    assert meta.status == states.RETRY
    import time

    time.sleep(0.1)
    msg, _ = take(app)
    assert (msg.id, msg.headers.retries) == (sent.id, 1)
    assert msg.headers.eta is not None
    execute(app, msg)
    time.sleep(0.1)
    execute(app, take(app)[0])
    assert sent.get(timeout=1) == "ok after 2"


def test_max_retries_fails_with_the_tasks_own_error(app: TaskQ, take: Any) -> None:
    @app.task(bind=True, max_retries=0)
    def never(self: Any) -> None:
        raise self.retry(exc=KeyError("gone"))

    sent = never.delay()
    assert run(app, take).state == states.FAILURE
    with pytest.raises(KeyError):
        sent.get(timeout=1)


def test_autoretry_for_with_backoff(app: TaskQ, take: Any) -> None:
    @app.task(autoretry_for=(ConnectionError,), retry_backoff=0.01, retry_jitter=False,
              max_retries=1)  # fmt: skip
    def down() -> None:
        raise ConnectionError("no route")

    sent = down.delay()
    assert run(app, take).state == states.RETRY
    import time

    time.sleep(0.05)
    assert run(app, take).state == states.FAILURE
    with pytest.raises(ConnectionError):
        sent.get(timeout=1)


def test_ignore_and_reject(app: TaskQ, take: Any) -> None:
    @app.task
    def ignored() -> None:
        raise Ignore()

    @app.task
    def requeue() -> None:
        raise Reject("try later", requeue=True)

    @app.task
    def refuse() -> None:
        raise Reject("never")

    ignored.delay()
    requeue.delay()
    refuse.delay()
    assert run(app, take).state == states.IGNORED
    second = run(app, take)
    assert (second.state, second.settle) == (states.REJECTED, REQUEUE)
    third = run(app, take)
    assert (third.settle, third.reason) == (DEAD_LETTER, "never")


def test_unknown_and_expired_messages(app: TaskQ, take: Any) -> None:
    app.send_task("nobody.knows.me")
    outcome = run(app, take)
    assert outcome.settle == DEAD_LETTER
    assert outcome.reason is not None
    assert "unknown task 'nobody.knows.me'" in outcome.reason

    @app.task
    def late() -> None: ...

    sent = late.apply_async(expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    expired = run(app, take)
    assert (expired.state, expired.reason) == (states.REVOKED, "expired")
    assert sent.state == states.REVOKED


def test_ignore_result_track_started_and_extended(app: TaskQ, take: Any) -> None:
    app.conf.result_extended = True
    started: list[Any] = []

    @app.task(ignore_result=True)
    def quiet() -> int:
        return 1

    @app.task(track_started=True, bind=True)
    def tracked(self: Any) -> str:
        meta = app.backend.get(self.request.id)
        started.append(meta.status if meta else None)
        return "done"

    q = quiet.delay()
    run(app, take)
    assert app.backend.get(q.id) is None
    t = tracked.delay()
    run(app, take)
    assert started == [states.STARTED]
    meta = app.backend.get(t.id)
    assert meta is not None
    assert (meta.name, meta.worker, meta.queue, meta.args) == (tracked.name, "w@test", "celery", [])


def test_acks_on_failure_off_dead_letters(app: TaskQ, take: Any) -> None:
    @app.task(acks_on_failure_or_timeout=False)
    def fails() -> None:
        raise RuntimeError("x")

    fails.delay()
    outcome = run(app, take)
    assert outcome.settle == DEAD_LETTER


def test_unstorable_return_value_is_a_failure(app: TaskQ, take: Any) -> None:
    @app.task
    def returns_object() -> object:
        return object()

    sent = returns_object.delay()
    assert run(app, take).state == states.FAILURE
    assert sent.state == states.FAILURE


def test_worker_side_marks(app: TaskQ) -> None:
    msg = TaskMessage.create("t.lost")
    mark_failed(app, msg, TimeoutError("hard limit"))
    meta = app.backend.get(msg.id)
    assert meta is not None
    assert meta.status == states.FAILURE
    other = TaskMessage.create("t.revoked")
    mark_revoked(app, other, "terminated", terminated=True)
    assert app.AsyncResult(other.id).state == states.REVOKED


def test_eager_apply_and_always_eager(app: TaskQ) -> None:
    @app.task(bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self: Any, n: int) -> int:
        if self.request.retries < n:
            raise self.retry()
        return self.request.retries

    @app.task
    def boom() -> None:
        raise ValueError("eager")

    assert flaky.apply((2,)).get() == 2
    failed = boom.apply()
    assert failed.state == states.FAILURE
    with pytest.raises(ValueError, match="eager"):
        failed.get()
    app.conf.task_always_eager = True
    assert flaky.delay(1).get() == 1
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError, match="eager"):
        boom.delay()


def test_a_pool_stop_is_left_to_the_pool_but_eager_runs_record_it(app: TaskQ, take: Any) -> None:
    from taskq.exceptions import TimeLimitExceeded

    errbacks: list[str] = []

    @app.task
    def stopped() -> None:
        raise TimeLimitExceeded("hard limit")  # as the threads/solo pools raise it

    @app.task
    def errback(task_id: str) -> None:
        errbacks.append(task_id)

    sent = stopped.apply_async(link_error=errback.s())
    with pytest.raises(TimeLimitExceeded):
        run(app, take)  # the pool reports the timeout; the worker records it once
    assert app.backend.get(sent.id) is None
    assert app.transport.queue_length("celery") == 0  # no errback sent twice
    eager = stopped.apply()
    assert eager.state == states.FAILURE
