"""Results: waiting, failures as exceptions, the result graph, sets, groups and eager results.

Results are read from a real :class:`MemoryBackend` (records encoded as a store keeps them),
written by the test as a worker would, often from another thread while the reader waits.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from taskq import result as result_module
from taskq.backends.memory import MemoryBackend
from taskq.contracts import BackendOptions, ResultBackend
from taskq.exceptions import TaskRevokedError, TimeLimitExceeded, TimeoutError
from taskq.result import (
    AsyncResult,
    EagerResult,
    GroupResult,
    IncompleteStream,
    ResultSet,
    allow_join_result,
    result_from_tuple,
)
from taskq_protocol import MalformedMessage, ResultMeta, UnsafeException, states

TB = 'Traceback (most recent call last):\n  File "proj/tasks.py", line 3, in add\nValueError: bad\n'


class RecordingBackend(MemoryBackend):
    """A memory store that counts reads, to show what a result caches and how it waits."""

    def __init__(self) -> None:
        super().__init__(f"memory://results-{uuid.uuid4().hex}", BackendOptions(extended=True))
        self.gets = 0
        self.reads: Counter[str] = Counter()
        self.waits: list[list[str]] = []

    def get(self, task_id: str) -> ResultMeta | None:
        self.gets += 1
        self.reads[task_id] += 1
        return super().get(task_id)

    def wait(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, ResultMeta]:
        self.waits.append(list(task_ids))
        return super().wait(task_ids, timeout)


class App:
    """What a result needs from the app: the store, revoke, and the running task's id."""

    def __init__(self, backend: RecordingBackend) -> None:
        self._backend = backend
        self.revoked: list[tuple[list[str], bool, str | None]] = []
        self.running: str | None = None

    @property
    def backend(self) -> RecordingBackend:
        return self._backend

    def revoke(
        self, task_ids: Sequence[str], *, terminate: bool = False, signal: str | None = None
    ) -> None:
        self.revoked.append((list(task_ids), terminate, signal))

    def current_task_id(self) -> str | None:
        return self.running


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def app(backend: RecordingBackend) -> App:
    return App(backend)


@pytest.fixture
def later() -> Iterator[Any]:
    """``later(seconds, fn, *args)`` runs ``fn`` on another thread, as a worker would."""
    timers: list[threading.Timer] = []

    def schedule(seconds: float, fn: Any, *args: Any, **kwargs: Any) -> None:
        timer = threading.Timer(seconds, fn, args, kwargs)
        timers.append(timer)
        timer.start()

    yield schedule
    for timer in timers:
        timer.cancel()
        timer.join()


def done(backend: ResultBackend, task_id: str, value: Any = None, **fields: Any) -> None:
    fields.setdefault("status", states.SUCCESS)
    backend.store(ResultMeta(task_id, result=value, date_done=datetime.now(timezone.utc), **fields))


def failed(backend: ResultBackend, task_id: str, exc: BaseException, tb: str | None = TB) -> None:
    backend.store(ResultMeta.failure(task_id, exc, tb, date_done=datetime.now(timezone.utc)))


def new_id() -> str:
    return str(uuid.uuid4())


# -- waiting --------------------------------------------------------------------------------------


def test_get_waits_for_a_result_stored_by_another_thread(app: App, later: Any) -> None:
    r: AsyncResult[int] = AsyncResult(new_id(), app=app)
    assert r.state == states.PENDING
    assert not r.ready()
    later(0.05, done, app.backend, r.id, 42)
    started = time.monotonic()
    assert r.get(timeout=5) == 42
    assert time.monotonic() - started < 2
    # No polling: one wait, handed to the backend.
    assert app.backend.waits == [[r.id]]


def test_many_threads_waiting_on_one_result_all_get_it(app: App, later: Any) -> None:
    r: AsyncResult[str] = AsyncResult(new_id(), app=app)
    values: list[str] = []
    threads = [threading.Thread(target=lambda: values.append(r.get(timeout=5))) for _ in range(8)]
    for thread in threads:
        thread.start()
    later(0.05, done, app.backend, r.id, "ok")
    for thread in threads:
        thread.join()
    assert values == ["ok"] * 8


def test_get_times_out_and_the_task_stays_pending(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"{r.id} was not ready after 0.1s"):
        r.get(timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 2
    with pytest.raises(TimeoutError):
        r.get(timeout=0)
    assert r.state == states.PENDING


def test_retry_is_not_ready(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    app.backend.store(ResultMeta(r.id, status=states.RETRY, result={
        "exc_type": "ConnectionError", "exc_message": ["down"], "exc_module": "builtins"}))  # fmt: skip
    assert (r.state, r.ready()) == (states.RETRY, False)
    assert isinstance(r.result, ConnectionError)
    with pytest.raises(TimeoutError):
        r.get(timeout=0.05)
    assert r.wait is not None  # Celery's alias


def test_a_ready_result_is_read_once(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    r.state  # PENDING is read again every time
    r.state
    assert app.backend.gets == 2
    done(app.backend, r.id, [1, 2])
    assert r.result == [1, 2]
    assert (r.state, r.successful(), r.failed(), r.get(), r.info) == (
        "SUCCESS",
        True,
        False,
        [1, 2],
        [1, 2],
    )
    assert app.backend.gets == 3
    assert app.backend.waits == []  # get() on a cached result does not wait


def test_ignored_results_return_none_at_once(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    r.ignored = True
    assert r.get() is None
    assert app.backend.waits == []


def test_an_id_is_required() -> None:
    with pytest.raises(ValueError, match="needs a task id"):
        AsyncResult("")
    with pytest.raises(ValueError, match="needs a task id"):
        AsyncResult(None)  # type: ignore[arg-type]


# -- failures -------------------------------------------------------------------------------------


def test_a_failure_raises_the_tasks_exception_with_the_remote_traceback(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    failed(app.backend, r.id, ValueError("bad", 42))
    with pytest.raises(ValueError, match="bad") as info:
        r.get()
    assert type(info.value) is ValueError
    assert info.value.args == ("bad", 42)
    assert info.value.remote_traceback == TB  # type: ignore[attr-defined]
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == [f"Remote traceback of task {r.id}:\n{TB.rstrip()}"]
    assert (r.state, r.failed(), r.successful(), r.traceback) == (states.FAILURE, True, False, TB)
    # Raising again gives a fresh exception: notes and tracebacks do not pile up.
    with pytest.raises(ValueError, match="bad") as again:
        r.get()
    assert again.value is not info.value
    if sys.version_info >= (3, 11):
        assert len(again.value.__notes__) == 1


def test_without_propagate_the_exception_is_returned(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    failed(app.backend, r.id, KeyError("k"))
    value = r.get(propagate=False)
    assert isinstance(value, KeyError)
    assert value.args == ("k",)
    assert r.result is value
    assert r.maybe_throw(propagate=False) is value


def test_an_unknown_exception_class_comes_back_as_a_stand_in(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    app.backend.store(ResultMeta(r.id, status=states.FAILURE, traceback=TB, result={
        "exc_type": "PaymentDeclined", "exc_message": ["card 4242"], "exc_module": "proj.billing"}))  # fmt: skip
    with pytest.raises(Exception, match="card 4242") as info:
        r.get()
    assert (type(info.value).__module__, type(info.value).__name__) == (
        "proj.billing",
        "PaymentDeclined",
    )


def test_celery_exception_names_read_as_taskqs(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    app.backend.store(ResultMeta(r.id, status=states.FAILURE, result={
        "exc_type": "TimeLimitExceeded", "exc_message": [30.0], "exc_module": "celery.exceptions"}))  # fmt: skip
    with pytest.raises(TimeLimitExceeded):
        r.get()


def test_a_store_naming_a_non_exception_is_refused(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    app.backend.store(ResultMeta(r.id, status=states.FAILURE, result={
        "exc_type": "system", "exc_message": ["touch /tmp/pwned"], "exc_module": "os"}))  # fmt: skip
    with pytest.raises(UnsafeException, match=r"os\.system"):
        r.get()


def test_a_failure_whose_result_is_no_exception_still_raises(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    done(app.backend, r.id, "just text", status=states.FAILURE)
    with pytest.raises(Exception, match="ended in FAILURE with 'just text'"):
        r.get()


@pytest.mark.parametrize(
    ("stored", "args"),
    [
        (None, ("revoked",)),
        ({"exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "celery.exceptions"},
         ("expired",)),
        ({"exc_type": "TaskRevokedError", "exc_message": ["terminated"], "exc_module": "taskq.exceptions"},
         ("terminated",)),
        ({"exc_type": "Oops", "exc_message": ["x"], "exc_module": "elsewhere"}, ("x",)),
    ],
)  # fmt: skip
def test_revoked_results_are_task_revoked_errors(
    app: App, stored: Any, args: tuple[Any, ...]
) -> None:
    r = AsyncResult(new_id(), app=app)
    done(app.backend, r.id, stored, status=states.REVOKED)
    assert r.ready()
    assert not r.failed()
    with pytest.raises(TaskRevokedError) as info:
        r.get()
    assert info.value.args == args
    assert isinstance(r.result, TaskRevokedError)


def test_throw_and_maybe_throw(app: App) -> None:
    ok, bad = AsyncResult(new_id(), app=app), AsyncResult(new_id(), app=app)
    done(app.backend, ok.id, 1)
    failed(app.backend, bad.id, ValueError("bad"))
    seen: list[tuple[str, Any]] = []
    assert ok.maybe_throw(callback=lambda tid, value: seen.append((tid, value))) == 1
    assert seen == [(ok.id, 1)]
    with pytest.raises(ValueError, match="bad"):
        bad.maybe_throw()
    with pytest.raises(ValueError, match="bad"):
        bad.throw()
    with pytest.raises(ValueError, match="is SUCCESS: it holds no exception"):
        ok.throw()


# -- never wait inside a task ----------------------------------------------------------------------


def test_get_inside_a_task_is_refused(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    done(app.backend, r.id, 1)
    app.running = "the-running-task"
    with pytest.raises(RuntimeError, match=r"Never call result.get\(\) within a task"):
        r.get()
    with pytest.raises(RuntimeError, match="Never call"):
        ResultSet([r], app=app).join()
    with pytest.raises(RuntimeError, match="Never call"):
        ResultSet([r], app=app).get()
    assert r.get(disable_sync_subtasks=False) == 1
    with allow_join_result():
        assert r.get() == 1
        assert ResultSet([r], app=app).join() == [1]
    with pytest.raises(RuntimeError, match="Never call"):
        r.get()


def test_allow_join_result_is_per_thread(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    done(app.backend, r.id, 1)
    app.running = "the-running-task"
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            r.get()
        except RuntimeError as exc:
            errors.append(exc)

    with allow_join_result():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1


# -- extended fields, identity, revoke, forget -----------------------------------------------------


def test_extended_fields(app: App) -> None:
    r = AsyncResult(new_id(), app=app, task_name="proj.add")
    assert r.name == "proj.add"  # from the sender until the store says
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    app.backend.store(ResultMeta(r.id, status=states.SUCCESS, result=3, date_done=when,
                                 name="proj.tasks.add", args=[1, 2], kwargs={"z": 0},
                                 worker="w1@host", retries=2, queue="math"))  # fmt: skip
    assert (r.name, r.args, r.kwargs, r.worker, r.retries, r.queue, r.date_done) == (
        "proj.tasks.add", [1, 2], {"z": 0}, "w1@host", 2, "math", when,
    )  # fmt: skip


def test_identity_is_the_id(app: App) -> None:
    tid = new_id()
    a, b = AsyncResult(tid, app=app), AsyncResult(tid, app=app, task_name="x")
    assert a == b
    assert a == tid
    assert hash(a) == hash(b) == hash(tid)
    assert a != AsyncResult(new_id(), app=app)
    assert a != 3
    assert (repr(a), str(a)) == (f"<AsyncResult: {tid}>", tid)
    assert len({a, b}) == 1


def test_revoke_goes_through_the_app(app: App) -> None:
    r = AsyncResult(new_id(), app=app)
    r.revoke()
    r.revoke(terminate=True, signal="SIGKILL")
    assert app.revoked == [([r.id], False, None), ([r.id], True, "SIGKILL")]


def test_forget_deletes_the_result_and_its_parents(app: App) -> None:
    first = AsyncResult(new_id(), app=app)
    second = AsyncResult(new_id(), app=app, parent=first)
    done(app.backend, first.id, 1)
    done(app.backend, second.id, 2)
    assert second.get() == 2
    assert second.exists()
    second.forget()
    assert (second.state, second.exists(), first.exists()) == (states.PENDING, False, False)


def test_a_result_without_an_app_uses_the_current_app(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(result_module, "current_app", lambda: app)
    r = AsyncResult(new_id())
    done(app.backend, r.id, 7)
    assert r.get() == 7
    assert r.app is app


# -- the graph: parents and children ----------------------------------------------------------------


def test_a_failed_parent_raises_instead_of_waiting_forever(app: App) -> None:
    first = AsyncResult(new_id(), app=app)
    second = AsyncResult(new_id(), app=app, parent=first)
    failed(app.backend, first.id, ZeroDivisionError("in step one"))
    started = time.monotonic()
    with pytest.raises(ZeroDivisionError, match="in step one"):
        second.get(timeout=5, interval=0.01)
    assert time.monotonic() - started < 1
    with pytest.raises(TimeoutError):
        second.get(timeout=0.05, follow_parents=False)


def test_a_parent_failing_while_we_wait_is_noticed(app: App, later: Any) -> None:
    root = AsyncResult(new_id(), app=app)
    middle = AsyncResult(new_id(), app=app, parent=root)
    last = AsyncResult(new_id(), app=app, parent=middle)
    done(app.backend, root.id, 1)
    later(0.05, failed, app.backend, middle.id, RuntimeError("step two"))
    with pytest.raises(RuntimeError, match="step two"):
        last.get(timeout=5, interval=0.02)
    # The parent that succeeded was read once, then no more; the one running, each interval.
    assert app.backend.reads[root.id] == 1
    assert 2 <= app.backend.reads[middle.id] <= 10


def test_the_earliest_failed_parent_is_reported(app: App) -> None:
    root = AsyncResult(new_id(), app=app)
    middle = AsyncResult(new_id(), app=app, parent=root)
    last = AsyncResult(new_id(), app=app, parent=middle)
    failed(app.backend, root.id, KeyError("root"))
    failed(app.backend, middle.id, KeyError("middle"))
    with pytest.raises(KeyError, match="root"):
        last.get(timeout=1)


def test_the_earliest_failure_wins_when_parents_fail_while_we_wait(app: App, later: Any) -> None:
    root = AsyncResult(new_id(), app=app)
    middle = AsyncResult(new_id(), app=app, parent=root)
    last = AsyncResult(new_id(), app=app, parent=middle)

    def both_fail() -> None:
        failed(app.backend, middle.id, KeyError("middle"))
        failed(app.backend, root.id, KeyError("root"))

    later(0.05, both_fail)
    with pytest.raises(KeyError, match="root"):
        last.get(timeout=5, interval=0.01)


def test_children_collect_and_get_leaf(app: App) -> None:
    root, child, g1, g2 = (new_id() for _ in range(4))
    group_id = new_id()
    done(app.backend, root, "root", children=[[[child, None], None],
                                              [[group_id, None], [[[g1, None], None], [[g2, None], None]]]])  # fmt: skip
    done(app.backend, child, "child")
    done(app.backend, g1, 1)
    done(app.backend, g2, 2)
    r = AsyncResult(root, app=app)
    kids = r.children
    assert [type(k) for k in kids] == [AsyncResult, GroupResult]
    assert kids[0].id == child
    assert kids[1].id == group_id
    assert isinstance(kids[1], GroupResult)
    assert [m.id for m in kids[1].results] == [g1, g2]
    collected = [(node.id, value) for node, value in r.collect()]
    assert collected == [(root, "root"), (child, "child"), (group_id, [1, 2]), (g1, 1), (g2, 2)]
    assert [(None if p is None else p.id, n.id) for p, n in r.iterdeps()] == [
        (None, root), (root, child), (root, group_id), (group_id, g1), (group_id, g2),
    ]  # fmt: skip
    assert r.get_leaf() == 2


def test_iterdeps_stops_at_an_unfinished_node_unless_intermediate(app: App) -> None:
    root, child = new_id(), new_id()
    done(app.backend, root, 0, children=[[[child, None], None]])
    r = AsyncResult(root, app=app)
    with pytest.raises(IncompleteStream):
        list(r.iterdeps())
    assert [n.id for _, n in r.iterdeps(intermediate=True)] == [root, child]


def test_result_tuples_round_trip(app: App) -> None:
    first = AsyncResult(new_id(), app=app)
    group = GroupResult(new_id(), [AsyncResult(new_id(), app=app), AsyncResult(new_id(), app=app)],
                        parent=first, app=app)  # fmt: skip
    last = AsyncResult(new_id(), app=app, parent=group)
    assert first.as_tuple() == [[first.id, None], None]
    assert last.as_tuple() == [[last.id, group.as_tuple()], None]
    assert group.as_tuple() == [[group.id, [[first.id, None], None]],
                                [[[m.id, None], None] for m in group.results]]  # fmt: skip
    back = result_from_tuple(last.as_tuple(), app)
    assert isinstance(back, AsyncResult)
    assert back == last
    assert back.parent == group
    assert back.parent is not None
    assert back.parent.parent == first
    assert result_from_tuple(last, app) is last
    assert result_from_tuple([last.id, None], app) == last  # very old stores wrote bare ids
    with pytest.raises(MalformedMessage):
        result_from_tuple([["only-one-part"]], app)


# -- sets and groups -------------------------------------------------------------------------------


def test_result_set_membership(app: App) -> None:
    a, b, c = (AsyncResult(new_id(), app=app) for _ in range(3))
    rs = ResultSet([a], app=app)
    rs.add(a)
    rs.add(b)
    rs.update([b, c])
    assert rs.results == [a, b, c]
    assert len(rs) == 3
    assert list(rs) == [a, b, c]
    assert rs[1] is b
    rs.remove(b.id)
    rs.discard(b)
    with pytest.raises(KeyError):
        rs.remove(b)
    assert rs == ResultSet([a, c])
    rs.clear()
    assert len(rs) == 0
    assert repr(ResultSet([a])) == f"<ResultSet: [{a.id}]>"


def test_join_returns_values_in_set_order_whatever_order_they_finish(app: App, later: Any) -> None:
    rs = ResultSet([AsyncResult(new_id(), app=app) for _ in range(4)], app=app)
    for delay, member in zip((0.08, 0.06, 0.04, 0.02), rs.results, strict=True):
        later(delay, done, app.backend, member.id, member.id[:4])
    expected = [m.id[:4] for m in rs.results]
    assert rs.join(timeout=5) == expected
    assert rs.get(timeout=5) == expected


def test_join_native_waits_once_for_every_id(app: App, later: Any) -> None:
    inner = GroupResult(new_id(), [AsyncResult(new_id(), app=app) for _ in range(2)], app=app)
    rs = ResultSet([AsyncResult(new_id(), app=app), inner], app=app)
    leaves = [rs.results[0].id, *(m.id for m in inner.results)]
    for i, tid in enumerate(leaves):
        later(0.02 * (3 - i), done, app.backend, tid, i)
    assert rs.join_native(timeout=5) == [0, [1, 2]]
    assert app.backend.waits == [leaves]
    assert rs.join_native() == [0, [1, 2]]  # all cached: no second wait
    assert len(app.backend.waits) == 1


@pytest.mark.parametrize("how", ["join", "join_native"])
def test_join_propagates_the_first_failure_in_order(app: App, how: str) -> None:
    a, b, c = (AsyncResult(new_id(), app=app) for _ in range(3))
    done(app.backend, a.id, 1)
    failed(app.backend, b.id, ValueError("b failed"))
    failed(app.backend, c.id, KeyError("c failed"))
    rs = ResultSet([a, b, c], app=app)
    with pytest.raises(ValueError, match="b failed"):
        getattr(rs, how)(timeout=1)
    values = getattr(rs, how)(timeout=1, propagate=False)
    assert values[0] == 1
    assert isinstance(values[1], ValueError)
    assert isinstance(values[2], KeyError)


@pytest.mark.parametrize("how", ["join", "join_native"])
def test_join_with_a_callback_and_a_timeout(app: App, how: str) -> None:
    a, b = AsyncResult(new_id(), app=app), AsyncResult(new_id(), app=app)
    done(app.backend, a.id, "a")
    seen: list[tuple[str, Any]] = []
    rs = ResultSet([a, b], app=app)
    with pytest.raises(TimeoutError):
        getattr(rs, how)(timeout=0.05)
    done(app.backend, b.id, "b")
    assert getattr(rs, how)(timeout=1, callback=lambda tid, v: seen.append((tid, v))) == []
    assert seen == [(a.id, "a"), (b.id, "b")]


def test_iter_native_yields_tasks_as_they_finish(app: App, later: Any) -> None:
    a, b, c = (AsyncResult(new_id(), app=app) for _ in range(3))
    done(app.backend, c.id, "c")
    c.get()
    later(0.15, done, app.backend, a.id, "a")
    later(0.02, done, app.backend, b.id, "b")
    order = [
        (tid, meta.result)
        for tid, meta in ResultSet([a, b, c]).iter_native(timeout=5, interval=0.01)
    ]
    assert order == [(c.id, "c"), (b.id, "b"), (a.id, "a")]
    with pytest.raises(TimeoutError):
        list(ResultSet([AsyncResult(new_id(), app=app)]).iter_native(timeout=0.05, interval=0.01))


def test_set_state_and_actions(app: App) -> None:
    a, b, c = (AsyncResult(new_id(), app=app) for _ in range(3))
    inner = GroupResult(new_id(), [c], app=app)
    rs = ResultSet([a, b, inner], app=app)
    assert (rs.ready(), rs.waiting(), rs.completed_count()) == (False, True, 0)
    done(app.backend, a.id, 1)
    failed(app.backend, b.id, ValueError("x"))
    done(app.backend, c.id, 3)
    assert (rs.ready(), rs.waiting(), rs.successful(), rs.failed(), rs.completed_count()) == (
        True, False, False, True, 2,
    )  # fmt: skip
    with pytest.raises(ValueError, match="x"):
        rs.maybe_throw()
    rs.revoke(terminate=True)
    assert app.revoked == [([a.id, b.id, c.id], True, None)]
    rs.forget()
    assert not any(r.exists() for r in (a, b, c))


def test_group_save_restore_delete(app: App) -> None:
    parent = AsyncResult(new_id(), app=app)
    group = GroupResult(new_id(), [AsyncResult(new_id(), app=app) for _ in range(3)],
                        parent=parent, app=app)  # fmt: skip
    group.save()
    restored = GroupResult.restore(group.id, app=app)
    assert restored is not None
    assert restored == group
    assert restored.parent == parent
    assert restored.results == group.results
    assert restored.children == group.results
    assert restored == group.id
    for i, member in enumerate(group.results):
        done(app.backend, member.id, i)
    assert restored.get(timeout=1) == [0, 1, 2]
    group.delete()
    assert GroupResult.restore(group.id, app=app) is None
    assert GroupResult.restore(new_id(), backend=app.backend) is None


def test_restore_refuses_what_is_not_this_group(app: App) -> None:
    app.backend.save_group("g1", [["other", None], []])
    with pytest.raises(MalformedMessage, match="not this group"):
        GroupResult.restore("g1", app=app)
    app.backend.save_group("g2", [["g2", None], None])
    with pytest.raises(MalformedMessage, match="not this group"):
        GroupResult.restore("g2", app=app)


def test_group_identity(app: App) -> None:
    members = [AsyncResult(new_id(), app=app)]
    g = GroupResult("gid", members, app=app)
    assert g == GroupResult("gid", members)
    assert g != GroupResult("gid", [])
    assert g == "gid"
    assert hash(g) == hash("gid")
    assert str(g) == "gid"
    assert repr(g) == f"<GroupResult: gid [{members[0].id}]>"
    assert bool(GroupResult("empty", []))


# -- eager results ---------------------------------------------------------------------------------


@pytest.fixture
def no_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if anything reaches for an app or a store."""

    def refuse() -> Any:
        raise AssertionError("an eager result needs no app")

    monkeypatch.setattr(result_module, "current_app", refuse)


@pytest.mark.usefixtures("no_app")
def test_eager_success() -> None:
    r: EagerResult[int] = EagerResult("e1", 5, states.SUCCESS, name="proj.add")
    assert (r.get(), r.wait(), r.result, r.state, r.status) == (5, 5, 5, "SUCCESS", "SUCCESS")
    assert (r.ready(), r.successful(), r.failed(), r.exists(), r.children, r.name) == (
        True, True, False, True, [], "proj.add",
    )  # fmt: skip
    assert r.date_done is not None
    assert r.traceback is None
    assert repr(r) == "<EagerResult: e1>"
    assert r == "e1"
    r.forget()
    assert r.get() == 5


@pytest.mark.usefixtures("no_app")
def test_eager_failure_raises_the_original_exception() -> None:
    try:
        raise ValueError("eager boom")
    except ValueError as exc:
        original = exc
    r: EagerResult[int] = EagerResult("e2", original, states.FAILURE, traceback="tb text")
    with pytest.raises(ValueError, match="eager boom") as info:
        r.get()
    assert info.value is original
    assert not hasattr(original, "remote_traceback")  # its own traceback is the real one
    assert r.get(propagate=False) is original
    assert r.result is original
    assert (r.failed(), r.traceback) == (True, "tb text")
    with pytest.raises(ValueError, match="eager boom"):
        r.maybe_throw()


@pytest.mark.usefixtures("no_app")
def test_revoking_an_eager_result_replaces_its_value() -> None:
    r: EagerResult[int] = EagerResult("e3", 1, states.SUCCESS)
    r.revoke()
    assert r.state == states.REVOKED
    with pytest.raises(TaskRevokedError, match="revoked"):
        r.get()
    assert isinstance(r.result, TaskRevokedError)


def test_eager_get_is_allowed_inside_a_task(app: App) -> None:
    app.running = "a-task"
    r: EagerResult[int] = EagerResult("e4", 2, states.SUCCESS, app=app)
    assert r.get() == 2


@pytest.mark.usefixtures("no_app")
def test_an_eager_chain_keeps_its_parents() -> None:
    first: EagerResult[int] = EagerResult("c1", 1, states.SUCCESS)
    second: EagerResult[int] = EagerResult("c2", 2, states.SUCCESS, parent=first)
    assert second.parent is first
    assert second.as_tuple() == [["c2", [["c1", None], None]], None]
    assert [n.id for _, n in second.iterdeps()] == ["c2"]


# -- with the real app ---------------------------------------------------------------------------


def test_the_app_serves_results_and_refuses_waits_inside_a_running_task() -> None:
    from taskq import TaskQ
    from taskq.context import Request, pop_request, push_request

    name = f"memory://app-results-{uuid.uuid4().hex}"
    app = TaskQ("results", broker=name, backend=name, set_as_current=False)
    r = app.AsyncResult(new_id())
    done(app.backend, r.id, {"sum": 3})
    assert r.get(timeout=1) == {"sum": 3}
    push_request(Request(id="running-task"))
    try:
        with pytest.raises(RuntimeError, match="Never call"):
            r.get()
    finally:
        pop_request()
