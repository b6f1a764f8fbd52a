# pyright: strict
"""The conformance suite every :class:`taskq.contracts.ResultBackend` runs against its store.

An integration subclasses :class:`BackendConformance` as ``Test...`` and provides one fixture,
``open_backend``: a function ``(options) -> ResultBackend`` that builds a new backend on *this
test's* store. Every call must reach the same store, so two instances behave like a worker and
a client. Task and group ids are fresh uuids, so a shared server is fine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

import pytest

from taskq.contracts import BackendOptions, ChordPart, ResultBackend
from taskq_protocol import ResultMeta, ResultRef, exception_to_dict, states
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import make_failure, make_meta
from taskq_testing.waiting import wait_until

__all__ = ["BackendConformance", "BackendOpener", "ResultStore"]


class BackendOpener(Protocol):
    """Builds a new backend on the test's store with ``options``."""

    def __call__(self, options: BackendOptions) -> ResultBackend: ...


class ResultStore:
    """The backends one test opened; all are closed afterwards."""

    def __init__(self, opener: BackendOpener) -> None:
        self._opener = opener
        self._open: list[ResultBackend] = []

    def open(self, **options: Any) -> ResultBackend:
        """A new instance on the same store; ``options`` are :class:`BackendOptions` fields."""
        backend = self._opener(BackendOptions(**options))
        self._open.append(backend)
        return backend

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()


def _new_id() -> str:
    return str(uuid.uuid4())


def _part(group_id: str, index: int, meta: ResultMeta | None = None) -> ChordPart:
    meta = meta or make_meta(result=index, group_id=group_id)
    return ChordPart(group_id=group_id, task_id=meta.task_id, group_index=index, meta=meta)


class BackendConformance:
    """Every documented semantic of :class:`~taskq.contracts.ResultBackend`, as tests.

    Subclass it as ``TestMyBackend`` and define the ``open_backend`` fixture.
    """

    #: The short expiry the expiry tests use, in seconds (raise it for stores that count
    #: whole seconds).
    short_expires: ClassVar[float] = 0.5
    #: How long past a due time the suite waits for the store to act (expire a record, wake
    #: a waiter) before it fails the test.
    latency: ClassVar[float] = 2.0

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def open_backend(self) -> BackendOpener:
        pytest.fail(
            f"{type(self).__name__} must define the `open_backend` fixture: a function "
            "(BackendOptions) -> ResultBackend that builds a new backend on this test's store"
        )

    @pytest.fixture
    def store(self, open_backend: BackendOpener) -> Iterator[ResultStore]:
        store = ResultStore(open_backend)
        yield store
        store.close_all()

    @pytest.fixture
    def backend(self, store: ResultStore) -> ResultBackend:
        """A backend with ``result_extended`` on, so every field is stored."""
        return store.open(extended=True)

    # -- the contract's shape --------------------------------------------------------------

    def test_is_a_result_backend(self, backend: ResultBackend) -> None:
        assert isinstance(backend, ResultBackend)
        assert backend.schemes, "schemes names the URL schemes this backend serves"
        assert all(isinstance(s, str) and s for s in backend.schemes)

    # -- store and get ---------------------------------------------------------------------

    def test_unknown_id_reads_as_pending(self, backend: ResultBackend) -> None:
        assert backend.get(_new_id()) is None

    @pytest.mark.parametrize(
        "result",
        [
            None,
            42,
            -1.5,
            True,
            "caf\u00e9 \N{SNAKE}",
            "x" * 100_000,
            [1, "two", None, [3.0, {"four": 4}]],
            {"nested": {"list": [1, 2], "none": None}, "ключ": "значение"},
        ],
        ids=["none", "int", "float", "bool", "unicode", "long-text", "list", "dict"],
    )
    def test_success_round_trip(self, backend: ResultBackend, result: Any) -> None:
        meta = make_meta(states.SUCCESS, result, group_id=_new_id(), parent_id=_new_id())
        backend.store(meta)
        assert backend.get(meta.task_id) == meta

    def test_failure_round_trip(self, backend: ResultBackend) -> None:
        traceback = 'Traceback (most recent call last):\n  File "x.py"\nValueError: bad\n'
        meta = make_failure(ValueError("bad", 42), traceback=traceback)
        backend.store(meta)
        got = backend.get(meta.task_id)
        assert got is not None
        assert got == meta
        exc = got.exception()
        assert isinstance(exc, ValueError)
        assert exc.args == ("bad", 42)

    def test_children_round_trip(self, backend: ResultBackend) -> None:
        parent = ResultRef(_new_id())
        child = ResultRef(_new_id(), parent=parent)
        group = ResultRef(_new_id(), children=(ResultRef(_new_id()), ResultRef(_new_id())))
        meta = make_meta(children=[child.as_tuple(), group.as_tuple()])
        backend.store(meta)
        got = backend.get(meta.task_id)
        assert got is not None
        assert got.child_refs() == [child, group]

    def test_extended_fields_round_trip(self, backend: ResultBackend) -> None:
        meta = make_meta(
            name="proj.tasks.add",
            args=[2, "three"],
            kwargs={"four": 4},
            worker="celery@host",
            retries=2,
            queue="celery",
        )
        backend.store(meta)
        assert backend.get(meta.task_id) == meta

    def test_extended_fields_need_result_extended(self, store: ResultStore) -> None:
        backend = store.open(extended=False)
        meta = make_meta(result=1, name="proj.tasks.add", args=[1], kwargs={}, worker="w")
        backend.store(meta)
        got = backend.get(meta.task_id)
        assert got is not None
        assert (got.name, got.args, got.kwargs, got.worker) == (None, None, None, None)
        assert got.result == 1

    def test_extra_fields_are_kept(self, backend: ResultBackend) -> None:
        meta = make_meta(extra={"stamped_headers": ["tenant"], "tenant": "acme"})
        backend.store(meta)
        got = backend.get(meta.task_id)
        assert got is not None
        assert got.extra == meta.extra

    def test_a_second_instance_reads_what_the_first_stored(self, store: ResultStore) -> None:
        writer, reader = store.open(), store.open()
        meta = make_meta(result={"answer": 42})
        writer.store(meta)
        assert reader.get(meta.task_id) == meta

    # -- state changes ---------------------------------------------------------------------

    def test_states_move_forward_to_success(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        for meta in (
            make_meta(states.STARTED, task_id=task_id),
            make_meta(states.RETRY, exception_to_dict(KeyError("k")), task_id=task_id),
            make_meta(states.SUCCESS, "done", task_id=task_id),
        ):
            backend.store(meta)
            got = backend.get(task_id)
            assert got is not None
            assert (got.status, got.result) == (meta.status, meta.result)

    def test_started_then_failure(self, backend: ResultBackend) -> None:
        task_id = _new_id()
        backend.store(make_meta(states.STARTED, task_id=task_id))
        backend.store(make_failure(RuntimeError("late"), task_id=task_id))
        got = backend.get(task_id)
        assert got is not None
        assert got.status == states.FAILURE

    @pytest.mark.parametrize(
        "later",
        [states.FAILURE, states.STARTED, states.RETRY, states.REVOKED, states.SUCCESS],
    )
    def test_success_is_never_overwritten(self, backend: ResultBackend, later: str) -> None:
        first = make_meta(states.SUCCESS, "the good result")
        backend.store(first)
        backend.store(make_meta(later, "a late write", task_id=first.task_id))
        backend.store_many([make_meta(later, "a late batch", task_id=first.task_id)])
        assert backend.get(first.task_id) == first

    def test_success_wins_a_race_with_started(self, store: ResultStore) -> None:
        writers = [store.open(), store.open()]
        ids = [_new_id() for _ in range(50)]
        writes = (states.SUCCESS, states.STARTED)
        together = threading.Barrier(len(writers))

        def write(index: int) -> None:
            for task_id in ids:
                together.wait(self.latency)  # both write the same id at the same moment
                writers[index].store(make_meta(writes[index], task_id=task_id))

        run_in_threads(write, len(writers))
        reader = store.open()
        finals = {task_id: reader.get(task_id) for task_id in ids}
        lost = [i for i, meta in finals.items() if meta is None or meta.status != states.SUCCESS]
        assert lost == [], f"{len(lost)} SUCCESS results were overwritten by STARTED"

    # -- expiry and forget -----------------------------------------------------------------

    def test_store_with_expires_is_gone_after_it(self, backend: ResultBackend) -> None:
        meta = make_meta(result=1)
        backend.store(meta, expires=self.short_expires)
        assert backend.get(meta.task_id) == meta
        wait_until(
            lambda: backend.get(meta.task_id) is None,
            self.short_expires + self.latency,
            message="the record expired",
        )

    def test_default_expiry_comes_from_options(self, store: ResultStore) -> None:
        backend = store.open(expires=self.short_expires)
        meta = make_meta(result=1)
        backend.store_many([meta])
        assert backend.get(meta.task_id) == meta
        wait_until(
            lambda: backend.get(meta.task_id) is None,
            self.short_expires + self.latency,
            message="the record expired",
        )

    def test_expires_per_call_overrides_the_default(self, store: ResultStore) -> None:
        backend = store.open(expires=self.short_expires)
        kept, forever = make_meta(result="kept"), make_meta(result="forever")
        backend.store(kept, expires=3600)
        store.open(expires=None).store(forever)
        time.sleep(self.short_expires * 2)
        assert backend.get(kept.task_id) == kept
        assert backend.get(forever.task_id) == forever

    def test_forget(self, backend: ResultBackend) -> None:
        meta, other = make_meta(result=1), make_meta(result=2)
        backend.store_many([meta, other])
        backend.forget(meta.task_id)
        assert backend.get(meta.task_id) is None
        assert backend.get(other.task_id) == other
        backend.forget(_new_id())  # unknown: nothing to do, no error

    # -- store_many ------------------------------------------------------------------------

    def test_store_many_round_trip(self, backend: ResultBackend) -> None:
        metas = [make_meta(result=i) for i in range(5)]
        backend.store_many(meta for meta in metas)  # any iterable, even a generator
        assert [backend.get(m.task_id) for m in metas] == metas

    def test_store_many_of_nothing_is_a_no_op(self, backend: ResultBackend) -> None:
        backend.store_many([])

    # -- wait ------------------------------------------------------------------------------

    @pytest.mark.parametrize("writer", ["same-instance", "other-instance"])
    def test_wait_returns_when_ready(
        self, store: ResultStore, backend: ResultBackend, writer: str
    ) -> None:
        source = backend if writer == "same-instance" else store.open(extended=True)
        first, second = make_meta(result=1), make_failure(KeyError("k"))
        timer = threading.Timer(0.2, source.store_many, ([first, second],))
        started = time.monotonic()
        timer.start()
        try:
            got = backend.wait([first.task_id, second.task_id], self.latency * 5)
        finally:
            timer.join()
        elapsed = time.monotonic() - started
        assert got == {first.task_id: first, second.task_id: second}
        assert elapsed < 0.2 + self.latency, f"returned after {elapsed:.3f}s"

    def test_wait_times_out_with_the_ready_ones(self, backend: ResultBackend) -> None:
        ready = make_meta(states.REVOKED)
        running = make_meta(states.STARTED)
        backend.store_many([ready, running])
        timeout = self.short_expires
        started = time.monotonic()
        got = backend.wait([ready.task_id, running.task_id, _new_id()], timeout)
        elapsed = time.monotonic() - started
        assert got == {ready.task_id: ready}
        assert elapsed >= timeout * 0.8, f"returned after {elapsed:.3f}s, waited too little"
        assert elapsed <= timeout + self.latency, f"returned after {elapsed:.3f}s"

    def test_wait_returns_at_once_when_all_are_ready(self, backend: ResultBackend) -> None:
        metas = [make_meta(result=1), make_failure(KeyError("k"))]
        backend.store_many(metas)
        started = time.monotonic()
        got = backend.wait([m.task_id for m in metas], None)
        assert got == {m.task_id: m for m in metas}
        assert time.monotonic() - started < self.latency

    def test_wait_for_nothing_returns_nothing(self, backend: ResultBackend) -> None:
        assert backend.wait([], None) == {}

    # -- groups ----------------------------------------------------------------------------

    def test_group_round_trip(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        group = ResultRef(group_id, children=tuple(ResultRef(_new_id()) for _ in range(3)))
        backend.save_group(group_id, group.as_tuple())
        restored = backend.restore_group(group_id)
        assert restored is not None
        assert ResultRef.from_tuple(restored) == group

    def test_unknown_group_is_none(self, backend: ResultBackend) -> None:
        assert backend.restore_group(_new_id()) is None

    def test_delete_group(self, backend: ResultBackend) -> None:
        group_id, other_id = _new_id(), _new_id()
        for gid in (group_id, other_id):
            backend.save_group(gid, ResultRef(gid, children=(ResultRef(_new_id()),)).as_tuple())
        backend.delete_group(group_id)
        assert backend.restore_group(group_id) is None
        assert backend.restore_group(other_id) is not None
        backend.delete_group(_new_id())  # unknown: nothing to do, no error

    # -- chords ----------------------------------------------------------------------------

    def test_chord_completes_once_in_group_index_order(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(3)]
        backend.set_chord_size(group_id, 3)
        assert backend.chord_part_done(parts[2]) is None
        assert backend.chord_part_done(parts[0]) is None
        done = backend.chord_part_done(parts[1])
        assert done == [p.meta for p in parts]

    def test_parts_may_finish_before_the_size_is_set(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(3)]
        assert backend.chord_part_done(parts[0]) is None
        assert backend.chord_part_done(parts[1]) is None
        backend.set_chord_size(group_id, 3)
        assert backend.chord_part_done(parts[2]) == [p.meta for p in parts]

    def test_duplicate_part_is_counted_once(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(3)]
        backend.set_chord_size(group_id, 3)
        assert backend.chord_part_done(parts[0]) is None
        assert backend.chord_part_done(parts[0]) is None
        assert backend.chord_part_done(parts[1]) is None
        assert backend.chord_part_done(parts[2]) == [p.meta for p in parts]
        assert backend.chord_part_done(parts[0]) is None, "the body would run twice"
        backend.chord_body_sent(group_id)
        for part in parts:
            assert backend.chord_part_done(part) is None, "the body would run twice"

    def test_a_duplicate_keeps_the_first_result(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        first, other = _part(group_id, 0), _part(group_id, 1)
        rerun = ChordPart(
            group_id,
            first.task_id,
            0,
            make_meta(result="second run", task_id=first.task_id, group_id=group_id),
        )
        backend.set_chord_size(group_id, 2)
        assert backend.chord_part_done(first) is None
        assert backend.chord_part_done(rerun) is None, "a duplicate completed the chord"
        assert backend.chord_part_done(other) == [first.meta, other.meta]

    def test_failed_part_is_included(self, backend: ResultBackend) -> None:
        group_id = _new_id()
        failed = make_failure(ZeroDivisionError("division by zero"), group_id=group_id)
        parts = [_part(group_id, 0), _part(group_id, 1, failed)]
        backend.set_chord_size(group_id, 2)
        assert backend.chord_part_done(parts[0]) is None
        done = backend.chord_part_done(parts[1])
        assert done is not None
        assert done == [p.meta for p in parts]
        assert isinstance(done[1].exception(), ZeroDivisionError)

    def test_chords_are_counted_apart(self, backend: ResultBackend) -> None:
        first, second = _new_id(), _new_id()
        backend.set_chord_size(first, 2)
        backend.set_chord_size(second, 2)
        assert backend.chord_part_done(_part(first, 0)) is None
        assert backend.chord_part_done(_part(second, 0)) is None
        assert backend.chord_part_done(_part(second, 1)) is not None
        assert backend.chord_part_done(_part(first, 1)) is not None

    @pytest.mark.parametrize("instances", ["shared", "one-per-thread"])
    def test_concurrent_parts_complete_the_chord_exactly_once(
        self, store: ResultStore, backend: ResultBackend, instances: str
    ) -> None:
        size, threads = 24, 6
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(size)]
        backend.set_chord_size(group_id, size)
        reporters = [backend if instances == "shared" else store.open() for _ in range(threads)]

        def report(index: int) -> list[list[ResultMeta]]:
            done = (reporters[index].chord_part_done(p) for p in parts[index::threads])
            return [d for d in done if d is not None]

        completions = [d for ds in run_in_threads(report, threads) for d in ds]
        assert len(completions) == 1, f"the chord completed {len(completions)} times"
        assert completions[0] == [p.meta for p in parts]

    @pytest.mark.parametrize("instances", ["shared", "one-per-thread"])
    def test_concurrent_duplicates_claim_the_chord_for_one_task(
        self, store: ResultStore, backend: ResultBackend, instances: str
    ) -> None:
        # Every part is reported twice, by two threads (a header task delivered twice), and a
        # reporter that completes the chord marks it done at once, as a worker does after
        # sending the body. Only the claiming task may get the parts again (its own duplicate,
        # before it marked the chord done); no other part ever does.
        size, threads = 24, 6
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(size)]
        backend.set_chord_size(group_id, size)
        reporters = [backend if instances == "shared" else store.open() for _ in range(threads)]

        def report(index: int) -> list[str]:
            mine = [p for i, p in enumerate(parts) if i % threads in (index, (index + 1) % threads)]
            claimed: list[str] = []
            for part in mine:
                if reporters[index].chord_part_done(part) is not None:
                    claimed.append(part.task_id)
                    reporters[index].chord_body_sent(group_id)
            return claimed

        claims = [task_id for ids in run_in_threads(report, threads) for task_id in ids]
        assert claims, "the chord never completed"
        assert len(set(claims)) == 1, f"{len(set(claims))} different parts completed the chord"
        assert len(claims) <= 2

    # -- chord claims: the body is sent at least once ----------------------------------------

    def _completed(
        self, backend: ResultBackend, size: int = 3, lease: float = 30.0
    ) -> tuple[str, list[ChordPart]]:
        """A chord whose last part (the claimant) has just reported."""
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(size)]
        backend.set_chord_size(group_id, size)
        for part in parts[:-1]:
            assert backend.chord_part_done(part, lease=lease) is None
        assert backend.chord_part_done(parts[-1], lease=lease) == [p.meta for p in parts]
        return group_id, parts

    def test_a_claimed_chord_is_not_handed_to_another_part(self, backend: ResultBackend) -> None:
        _, parts = self._completed(backend)
        for part in parts[:-1]:
            assert backend.chord_part_done(part) is None, "a live claim was taken over"

    def test_the_claimant_gets_the_parts_again_until_the_body_is_sent(
        self, backend: ResultBackend
    ) -> None:
        # The claiming task's message delivered again (its worker died before sending the
        # body): the body must still be sent, so it completes the chord again.
        group_id, parts = self._completed(backend)
        assert backend.chord_part_done(parts[-1]) == [p.meta for p in parts]
        backend.chord_body_sent(group_id)
        assert backend.chord_part_done(parts[-1]) is None

    def test_an_expired_claim_lets_a_late_report_complete_the_chord(
        self, backend: ResultBackend
    ) -> None:
        group_id, parts = self._completed(backend, lease=self.short_expires)
        assert backend.chord_part_done(parts[0], lease=self.short_expires) is None
        wait_until(
            lambda: backend.chord_part_done(parts[0]) is not None,
            self.short_expires + self.latency,
            message="a report after the claim expired completed the chord",
        )
        assert backend.chord_part_done(parts[1]) is None, "the new claim is held too"
        backend.chord_body_sent(group_id)

    def test_a_done_chord_hands_out_nothing_even_after_the_lease(
        self, backend: ResultBackend
    ) -> None:
        group_id, parts = self._completed(backend, lease=self.short_expires)
        backend.chord_body_sent(group_id)
        time.sleep(self.short_expires * 1.5)
        for part in parts:
            assert backend.chord_part_done(part) is None

    def test_chord_body_sent_for_an_unknown_chord_is_a_no_op(self, backend: ResultBackend) -> None:
        backend.chord_body_sent(_new_id())

    def test_setting_the_size_again_starts_a_new_run(self, backend: ResultBackend) -> None:
        # A frozen chord applied again reuses its group id.
        group_id, _ = self._completed(backend, size=2)
        backend.chord_body_sent(group_id)
        parts = [_part(group_id, i) for i in range(2)]
        backend.set_chord_size(group_id, 2)
        assert backend.chord_part_done(parts[0]) is None
        assert backend.chord_part_done(parts[1]) == [p.meta for p in parts]

    @pytest.mark.parametrize("lease", [0, -1.0, float("nan")])
    def test_a_lease_must_be_positive(self, backend: ResultBackend, lease: float) -> None:
        group_id = _new_id()
        with pytest.raises(ValueError, match="lease"):
            backend.chord_part_done(_part(group_id, 0), lease=lease)

    def test_a_chord_outlives_a_short_result_expires(self, store: ResultStore) -> None:
        # Header tasks slower than result_expires must not lose the chord.
        backend = store.open(expires=self.short_expires)
        group_id = _new_id()
        parts = [_part(group_id, i) for i in range(2)]
        backend.set_chord_size(group_id, 2)
        assert backend.chord_part_done(parts[0]) is None
        probe = make_meta(result="short-lived")
        backend.store(probe)
        wait_until(
            lambda: backend.get(probe.task_id) is None,
            self.short_expires + self.latency,
            message="results expired",
        )
        assert backend.chord_part_done(parts[1]) == [p.meta for p in parts], "the chord expired"
