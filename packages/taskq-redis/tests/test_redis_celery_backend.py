"""taskq's Redis result backend and Celery 5.7's, on one Redis: each reads and waits for what
the other writes, groups restore across, and a chord split between them fires exactly once.

Celery is imported here only, as the other side of the wire. Its app uses the in-memory broker:
when Celery's side fires a chord body, ``callback.delay`` really publishes, and the
``before_task_publish`` signal records it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery.app.task import Context
from celery.backends.redis import RedisBackend as CeleryRedisBackend
from celery.result import AsyncResult, GroupResult

from taskq.contracts import BackendOptions, ChordPart
from taskq_protocol import ResultMeta, ResultRef, exception_to_dict, states
from taskq_redis.backend import RedisBackend
from taskq_testing.factories import make_failure, make_meta
from taskq_testing.waiting import wait_until

MakeApps = Callable[..., tuple[Celery, RedisBackend]]

ACCEPT = {"json": "application/json", "msgpack": "application/x-msgpack"}


def _new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def make_apps(redis_url: str) -> Iterator[MakeApps]:
    """A Celery app and a taskq backend on the same Redis, configured alike."""
    opened: list[tuple[Celery, RedisBackend]] = []

    def make(serializer: str = "json", **transport_options: Any) -> tuple[Celery, RedisBackend]:
        app = Celery("interop", broker="memory://", backend=redis_url, set_as_current=False)
        app.conf.result_serializer = serializer
        app.conf.accept_content = [serializer]
        app.conf.result_accept_content = [serializer]
        app.conf.result_backend_transport_options = dict(transport_options)
        backend = RedisBackend(
            redis_url,
            BackendOptions(
                transport_options=transport_options,
                serializer=serializer,
                accept=frozenset({ACCEPT[serializer]}),
            ),
        )
        opened.append((app, backend))
        return app, backend

    yield make
    for app, backend in opened:
        backend.close()
        app.close()


def _celery_backend(app: Celery) -> CeleryRedisBackend:
    backend = app.backend
    assert isinstance(backend, CeleryRedisBackend)
    return backend


# -- results, both ways -------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", list(ACCEPT))
def test_celery_reads_what_taskq_stores(make_apps: MakeApps, serializer: str) -> None:
    app, backend = make_apps(serializer)
    ok = make_meta(result={"answer": [4, 2]})
    traceback = 'Traceback (most recent call last):\n  File "t.py", line 1\nValueError: bad\n'
    failed = make_failure(ValueError("bad", 42), traceback=traceback)
    backend.store_many([ok, failed])
    assert AsyncResult(ok.task_id, app=app).get(timeout=5) == {"answer": [4, 2]}
    result = AsyncResult(failed.task_id, app=app)
    exc = result.get(timeout=5, propagate=False)
    assert isinstance(exc, ValueError)
    assert exc.args == ("bad", 42)
    assert result.state == "FAILURE"
    assert result.traceback == traceback


@pytest.mark.parametrize("serializer", list(ACCEPT))
def test_taskq_reads_what_celery_stores(make_apps: MakeApps, serializer: str) -> None:
    app, backend = make_apps(serializer)
    celery = _celery_backend(app)
    ok_id, failed_id = _new_id(), _new_id()
    celery.store_result(ok_id, {"answer": [4, 2]}, states.SUCCESS)
    celery.mark_as_failure(failed_id, KeyError("missing"), traceback="Traceback: KeyError\n")
    ok = backend.get(ok_id)
    assert ok is not None
    assert (ok.status, ok.result) == (states.SUCCESS, {"answer": [4, 2]})
    assert ok.date_done is not None
    failed = backend.get(failed_id)
    assert failed is not None
    assert failed.status == states.FAILURE
    assert failed.traceback == "Traceback: KeyError\n"
    exc = failed.exception()
    assert isinstance(exc, KeyError)
    assert exc.args == ("missing",)


def test_celery_get_wakes_when_taskq_stores(make_apps: MakeApps, redis_url: str) -> None:
    app, backend = make_apps()
    meta = make_meta(result="pushed")
    key = f"celery-task-meta-{meta.task_id}"
    client = redis.Redis.from_url(redis_url)

    def store_once_celery_listens() -> None:
        # Celery's get() subscribes to the key: proof it waits on pub/sub, not by polling.
        wait_until(lambda: client.pubsub_numsub(key)[0][1] >= 1, 5.0, message="subscribed")
        backend.store(meta)

    storing = threading.Thread(target=store_once_celery_listens)
    storing.start()
    try:
        assert AsyncResult(meta.task_id, app=app).get(timeout=10) == "pushed"
    finally:
        storing.join()
        client.close()


def test_taskq_wait_wakes_when_celery_stores(make_apps: MakeApps) -> None:
    app, backend = make_apps()
    task_id = _new_id()
    timer = threading.Timer(
        0.2, _celery_backend(app).store_result, (task_id, "from celery", states.SUCCESS)
    )
    timer.start()
    got = backend.wait([task_id], 10)
    timer.join()
    assert [(m.status, m.result) for m in got.values()] == [(states.SUCCESS, "from celery")]


def test_a_success_stays_whoever_writes_late(make_apps: MakeApps) -> None:
    app, backend = make_apps()
    celery = _celery_backend(app)
    by_celery, by_taskq = _new_id(), _new_id()
    celery.store_result(by_celery, "celery's result", states.SUCCESS)
    backend.store(make_meta(states.STARTED, task_id=by_celery))
    backend.store(make_meta(states.SUCCESS, task_id=by_taskq, result="taskq's result"))
    celery.store_result(by_taskq, None, states.STARTED)
    assert AsyncResult(by_celery, app=app).get(timeout=5) == "celery's result"
    got = backend.get(by_taskq)
    assert got is not None
    assert (got.status, got.result) == (states.SUCCESS, "taskq's result")


def test_global_keyprefix_is_shared(make_apps: MakeApps, redis_url: str) -> None:
    app, backend = make_apps(global_keyprefix="tenant")
    celery = _celery_backend(app)
    from_taskq = make_meta(result="t")
    from_celery = _new_id()
    backend.store(from_taskq)
    celery.store_result(from_celery, "c", states.SUCCESS)
    assert celery.get_key_for_task(from_celery) == f"tenant_celery-task-meta-{from_celery}".encode()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.exists(f"tenant_celery-task-meta-{from_taskq.task_id}")
    finally:
        client.close()
    assert AsyncResult(from_taskq.task_id, app=app).get(timeout=5) == "t"
    got = backend.get(from_celery)
    assert got is not None
    assert got.result == "c"


# -- groups -------------------------------------------------------------------------------------


def test_groups_restore_on_the_other_side(make_apps: MakeApps) -> None:
    app, backend = make_apps()
    # Celery saves, taskq restores.
    celery_id, child_ids = _new_id(), [_new_id() for _ in range(3)]
    GroupResult(celery_id, [AsyncResult(c, app=app) for c in child_ids]).save(backend=app.backend)
    restored = backend.restore_group(celery_id)
    assert restored is not None
    assert ResultRef.from_tuple(restored) == ResultRef(
        celery_id, children=tuple(ResultRef(c) for c in child_ids)
    )
    # taskq saves, Celery restores.
    group_id = _new_id()
    children = tuple(ResultRef(_new_id()) for _ in range(2))
    backend.save_group(group_id, ResultRef(group_id, children=children).as_tuple())
    found = GroupResult.restore(group_id, app=app)
    assert found is not None
    assert [r.id for r in found.results] == [c.id for c in children]
    backend.delete_group(group_id)
    assert GroupResult.restore(group_id, app=app) is None


# -- chords split between the two ---------------------------------------------------------------


class BodyPublishes:
    """Records every task message the Celery app publishes (the chord body, when it fires)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, sender: Any = None, headers: Any = None, body: Any = None, **_: Any) -> None:
        self.sent.append((headers["id"], list(body[0])))


@pytest.fixture
def body_publishes() -> Iterator[BodyPublishes]:
    recorder = BodyPublishes()
    signals.before_task_publish.connect(recorder, weak=False)
    yield recorder
    signals.before_task_publish.disconnect(recorder)


class SplitChord:
    """One chord: Celery set its size; parts reported by either side."""

    def __init__(self, app: Celery, backend: RedisBackend, size: int) -> None:
        self.app, self.backend = app, backend
        self.group_id = _new_id()
        self.task_ids = [_new_id() for _ in range(size)]
        self.body = app.signature("interop.body")
        self.body_id = self.body.freeze().id
        _celery_backend(app).set_chord_size(self.group_id, size)

    def by_celery(self, index: int, result: Any = None, state: str = states.SUCCESS) -> None:
        request = Context(
            id=self.task_ids[index],
            group=self.group_id,
            group_index=index,
            chord=dict(self.body),
        )
        _celery_backend(self.app).on_chord_part_return(
            request, state, f"result {index}" if result is None else result
        )

    def by_taskq(self, index: int, result: Any = None, state: str = states.SUCCESS) -> Any:
        task_id = self.task_ids[index]
        value = f"result {index}" if result is None else result
        meta = ResultMeta(task_id, state, value, group_id=self.group_id)
        return self.backend.chord_part_done(ChordPart(self.group_id, task_id, index, meta))


@pytest.mark.parametrize("last", ["celery", "taskq"])
def test_a_split_chord_fires_once_whoever_reports_last(
    make_apps: MakeApps, body_publishes: BodyPublishes, last: str
) -> None:
    app, backend = make_apps()
    chord = SplitChord(app, backend, 4)
    assert chord.by_taskq(0) is None
    chord.by_celery(1)
    assert chord.by_taskq(2) is None
    if last == "celery":
        chord.by_celery(3)
        assert body_publishes.sent == [(chord.body_id, [[f"result {i}" for i in range(4)]])]
    else:
        done = chord.by_taskq(3)
        assert [(m.task_id, m.status, m.result) for m in done] == [
            (chord.task_ids[i], states.SUCCESS, f"result {i}") for i in range(4)
        ]
        assert body_publishes.sent == []
        backend.chord_body_sent(chord.group_id)  # the taskq worker sent the body
    # Late duplicates, from either side, fire nothing more.
    chord.by_celery(0)
    assert chord.by_taskq(1) is None
    chord.by_celery(3)
    assert chord.by_taskq(3) is None
    assert len(body_publishes.sent) == (1 if last == "celery" else 0)


def test_a_part_reported_by_both_sides_counts_once(
    make_apps: MakeApps, body_publishes: BodyPublishes
) -> None:
    app, backend = make_apps()
    chord = SplitChord(app, backend, 3)
    chord.by_celery(0)
    assert chord.by_taskq(0, result="second run") is None  # the same header task, again
    chord.by_celery(1)
    assert body_publishes.sent == []
    done = chord.by_taskq(2)
    assert done is not None
    assert [m.result for m in done] == ["result 0", "result 1", "result 2"]


def test_a_failed_part_reaches_the_side_that_completes(
    make_apps: MakeApps, body_publishes: BodyPublishes
) -> None:
    app, backend = make_apps()
    # taskq completes: Celery's FAILURE part comes back as a failure with its exception.
    chord = SplitChord(app, backend, 2)
    chord.by_celery(0, ZeroDivisionError("division by zero"), states.FAILURE)
    done = chord.by_taskq(1)
    assert done is not None
    assert done[0].status == states.FAILURE
    assert isinstance(done[0].exception(), ZeroDivisionError)
    # Celery completes: taskq's FAILURE part fails the body with a ChordError, as Celery does.
    chord = SplitChord(app, backend, 2)
    failure = exception_to_dict(ValueError("bad part"))
    assert chord.by_taskq(0, failure, states.FAILURE) is None
    chord.by_celery(1)
    assert body_publishes.sent == []
    body = backend.get(chord.body_id)
    assert body is not None
    assert body.status == states.FAILURE
    assert "bad part" in str(body.exception())


def test_a_taskq_claim_holds_celery_off_until_it_expires(
    make_apps: MakeApps, body_publishes: BodyPublishes
) -> None:
    # taskq completes the chord and dies before sending the body (no chord_body_sent): its
    # claim is a task id in .c with a lease. Celery's duplicate part must not fire the body
    # while the claim lives, and must once it expired, as with Celery's own claims.
    app, backend = make_apps()
    chord = SplitChord(app, backend, 2)
    chord.by_celery(0)
    meta = ResultMeta(chord.task_ids[1], states.SUCCESS, "result 1", group_id=chord.group_id)
    part = ChordPart(chord.group_id, chord.task_ids[1], 1, meta)
    assert backend.chord_part_done(part, lease=0.3) is not None
    chord.by_celery(0)
    assert body_publishes.sent == []
    time.sleep(0.5)
    chord.by_celery(0)
    assert body_publishes.sent == [(chord.body_id, [["result 0", "result 1"]])]
