"""The semantics memory:// and sqlite:// result backends share, run against both."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from taskq.backends.memory import MemoryBackend
from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import BackendOptions, ChordPart, ResultBackend
from taskq_protocol import ResultMeta, ResultRef, exception_to_dict, states

Opener = Callable[..., ResultBackend]


def meta(
    status: str = states.SUCCESS, result: Any = None, task_id: str | None = None, **fields: Any
) -> ResultMeta:
    done = datetime.now(timezone.utc) if status in states.READY_STATES else None
    return ResultMeta(
        task_id=task_id or str(uuid.uuid4()), status=status, result=result, date_done=done, **fields
    )


@pytest.fixture(params=["sqlite", "memory"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Builds backends on one store from BackendOptions fields; all closed afterwards."""
    url = (
        f"sqlite:///{tmp_path}/results.db"
        if request.param == "sqlite"
        else f"memory://{uuid.uuid4()}"
    )
    kind = SQLiteBackend if request.param == "sqlite" else MemoryBackend
    opened: list[ResultBackend] = []

    def open_(**options: Any) -> ResultBackend:
        backend = kind(url, BackendOptions(**options))
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def backend(opener: Opener) -> ResultBackend:
    return opener(extended=True)


def test_is_a_result_backend(backend: ResultBackend) -> None:
    assert isinstance(backend, ResultBackend)


def test_round_trip_through_another_instance(opener: Opener) -> None:
    writer, reader = opener(extended=True), opener()
    stored = meta(
        result={"answer": [42, "x", None]},
        children=[ResultRef("child").as_tuple()],
        group_id="g",
        parent_id="p",
        name="proj.add",
        args=[1, 2],
        kwargs={"k": "v"},
        worker="w@h",
        retries=1,
        queue="celery",
        extra={"stamps": {"tenant": "acme"}},
    )
    writer.store(stored)
    assert reader.get(stored.task_id) == stored
    assert reader.get("unknown") is None


def test_without_result_extended_the_extended_fields_are_not_stored(opener: Opener) -> None:
    backend = opener(extended=False)
    stored = meta(result=1, name="proj.add", args=[1], worker="w")
    backend.store(stored)
    got = backend.get(stored.task_id)
    assert got is not None
    assert (got.result, got.name, got.args, got.worker) == (1, None, None, None)


def test_a_failure_keeps_its_exception(backend: ResultBackend) -> None:
    stored = ResultMeta.failure(str(uuid.uuid4()), ValueError("bad", 3), traceback="tb")
    backend.store(stored)
    got = backend.get(stored.task_id)
    assert got is not None
    exc = got.exception()
    assert isinstance(exc, ValueError)
    assert exc.args == ("bad", 3)


@pytest.mark.parametrize(
    "late", [states.STARTED, states.RETRY, states.FAILURE, states.REVOKED, states.SUCCESS]
)
def test_success_is_never_overwritten(backend: ResultBackend, late: str) -> None:
    good = meta(result="good")
    backend.store(good)
    backend.store(meta(late, "late", task_id=good.task_id))
    backend.store_many([meta(late, "late", task_id=good.task_id)])
    assert backend.get(good.task_id) == good


def test_a_batch_is_applied_in_order(backend: ResultBackend) -> None:
    task_id = str(uuid.uuid4())
    started, done, late = (
        meta(states.STARTED, task_id=task_id),
        meta(result=1, task_id=task_id),
        meta(states.FAILURE, exception_to_dict(KeyError("k")), task_id=task_id),
    )
    backend.store_many(iter([started, done, late]))
    assert backend.get(task_id) == done


def test_other_states_are_replaced(backend: ResultBackend) -> None:
    task_id = str(uuid.uuid4())
    for status in (states.STARTED, states.RETRY, states.FAILURE, states.STARTED):
        backend.store(meta(status, task_id=task_id))
        got = backend.get(task_id)
        assert got is not None
        assert got.status == status


def test_threads_racing_never_replace_success(opener: Opener) -> None:
    writers = [opener(), opener(), opener()]
    ids = [str(uuid.uuid4()) for _ in range(40)]
    order = [states.STARTED, states.SUCCESS, states.FAILURE]

    def write(index: int) -> None:
        for task_id in ids:
            writers[index].store(meta(order[index], task_id=task_id))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finals = [writers[0].get(task_id) for task_id in ids]
    assert {m.status for m in finals if m is not None} == {states.SUCCESS}


def test_expires_per_call_and_by_default(opener: Opener) -> None:
    backend = opener(expires=0.1)
    short, kept, forever = meta(result=1), meta(result=2), meta(result=3)
    backend.store(short)
    backend.store(kept, expires=60)
    opener(expires=None).store(forever)
    assert backend.get(short.task_id) == short
    time.sleep(0.15)
    assert backend.get(short.task_id) is None
    assert backend.wait([short.task_id], 0) == {}
    assert backend.get(kept.task_id) == kept
    assert backend.get(forever.task_id) == forever


def test_an_expired_success_may_be_written_again(opener: Opener) -> None:
    backend = opener(expires=0.05)
    old = meta(result="old")
    backend.store(old)
    time.sleep(0.1)
    new = meta(states.STARTED, task_id=old.task_id)
    backend.store(new)
    assert backend.get(old.task_id) == new


def test_forget(backend: ResultBackend) -> None:
    gone, kept = meta(), meta()
    backend.store_many([gone, kept])
    backend.forget(gone.task_id)
    backend.forget("never-stored")
    assert backend.get(gone.task_id) is None
    assert backend.get(kept.task_id) == kept


def test_wait_returns_when_every_result_is_ready(opener: Opener) -> None:
    waiter, writer = opener(), opener()
    first, second = meta(result=1), meta(states.REVOKED)
    writer.store(meta(states.STARTED, task_id=second.task_id))
    timer = threading.Timer(0.1, writer.store_many, ([first, second],))
    started = time.monotonic()
    timer.start()
    got = waiter.wait([first.task_id, second.task_id, first.task_id], None)
    timer.join()
    assert got == {first.task_id: first, second.task_id: second}
    assert time.monotonic() - started < 1


def test_wait_gives_the_ready_ones_at_the_timeout(backend: ResultBackend) -> None:
    ready, running = meta(states.FAILURE), meta(states.STARTED)
    backend.store_many([ready, running])
    started = time.monotonic()
    got = backend.wait([ready.task_id, running.task_id, "unknown"], 0.2)
    assert got == {ready.task_id: ready}
    assert 0.19 <= time.monotonic() - started < 1
    assert backend.wait([], 10) == {}


def test_groups(backend: ResultBackend, opener: Opener) -> None:
    group = ResultRef("g1", children=(ResultRef("a"), ResultRef("b", parent=ResultRef("p"))))
    backend.save_group("g1", group.as_tuple())
    backend.save_group("g2", ResultRef("g2", children=()).as_tuple())
    restored = opener().restore_group("g1")
    assert restored is not None
    assert ResultRef.from_tuple(restored) == group
    backend.delete_group("g1")
    backend.delete_group("unknown")
    assert backend.restore_group("g1") is None
    assert backend.restore_group("g2") is not None


def test_groups_expire(opener: Opener) -> None:
    backend = opener(expires=0.05)
    backend.save_group("g", ResultRef("g", children=()).as_tuple())
    time.sleep(0.1)
    assert backend.restore_group("g") is None


def part(group_id: str, index: int | None, status: str = states.SUCCESS) -> ChordPart:
    m = meta(status, result=index, group_id=group_id)
    return ChordPart(group_id=group_id, task_id=m.task_id, group_index=index, meta=m)


def test_chord_completes_once_in_index_order(backend: ResultBackend) -> None:
    parts = [part("c", i) for i in (2, None, 0, 1)]
    backend.set_chord_size("c", 4)
    assert [backend.chord_part_done(p) for p in parts[:3]] == [None, None, None]
    done = backend.chord_part_done(parts[3])
    assert done == [parts[2].meta, parts[3].meta, parts[0].meta, parts[1].meta]
    assert backend.chord_part_done(parts[0]) is None, "a late duplicate"
    assert backend.chord_part_done(part("c", 5)) is None, "a stray part after completion"


def test_parts_before_the_size_are_counted(opener: Opener) -> None:
    one, two = opener(), opener()
    parts = [part("c", i) for i in range(3)]
    assert one.chord_part_done(parts[0]) is None
    assert two.chord_part_done(parts[1]) is None
    assert two.chord_part_done(parts[1]) is None
    one.set_chord_size("c", 3)
    assert two.chord_part_done(parts[2]) == [p.meta for p in parts]


def test_a_duplicate_part_keeps_its_first_result(backend: ResultBackend) -> None:
    first = part("c", 0, states.FAILURE)
    again = ChordPart("c", first.task_id, 0, meta(result="second run", task_id=first.task_id))
    backend.set_chord_size("c", 2)
    assert backend.chord_part_done(first) is None
    assert backend.chord_part_done(again) is None
    other = part("c", 1)
    assert backend.chord_part_done(other) == [first.meta, other.meta]


def test_chords_are_apart_and_sizes_are_checked(backend: ResultBackend) -> None:
    backend.set_chord_size("a", 1)
    backend.set_chord_size("b", 2)
    assert backend.chord_part_done(part("b", 0)) is None
    assert backend.chord_part_done(part("a", 0)) is not None
    with pytest.raises(ValueError, match="chord size"):
        backend.set_chord_size("c", -1)


def test_threads_complete_a_chord_exactly_once(opener: Opener) -> None:
    size = 30
    parts = [part("c", i) for i in range(size)]
    reporters = [opener() for _ in range(4)]
    reporters[0].set_chord_size("c", size)
    completions: list[tuple[str, list[ResultMeta]]] = []
    lock = threading.Lock()

    def report(index: int) -> None:
        for p in parts[index:] + parts[:index]:  # every part, by every thread
            done = reporters[index].chord_part_done(p)
            if done is not None:
                reporters[index].chord_body_sent("c")  # as a worker does once the body is sent
                with lock:
                    completions.append((p.task_id, done))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One part claims the chord; only that task's own duplicates, reported before it was
    # marked done, may get the parts again (the documented window), never another part.
    assert completions, "the chord never completed"
    assert len({claimant for claimant, _ in completions}) == 1
    assert all(done == [p.meta for p in parts] for _, done in completions)
