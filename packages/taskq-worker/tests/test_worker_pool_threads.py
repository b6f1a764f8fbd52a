"""The threads pool with real threads: parallelism, limits and terminate by async exceptions."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pytest

from taskq.contracts import JobOutcome, Pool, PoolJob
from taskq.exceptions import TaskRevokedError, WorkerLostError
from taskq_worker.pools.threads import ThreadPool

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import worker_pool_targets as targets  # noqa: E402


@pytest.fixture
def open_pool() -> Iterator[Callable[..., tuple[ThreadPool, targets.Outcomes]]]:
    pools: list[ThreadPool] = []

    def open_(concurrency: int = 1, **options: Any) -> tuple[ThreadPool, targets.Outcomes]:
        pool, outcomes = ThreadPool(concurrency, **options), targets.Outcomes()
        pools.append(pool)
        pool.start(outcomes)
        return pool, outcomes

    yield open_
    for pool in pools:
        pool.stop(wait=False)


def run(pool: Pool, target: Callable[..., Any], *args: Any, **limits: float) -> str:
    task_id = str(uuid.uuid4())
    pool.apply(PoolJob(task_id, target, args, **limits))
    return task_id


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def pool_threads(other_than: AbstractSet[threading.Thread] = frozenset()) -> set[threading.Thread]:
    """Live pool threads, minus those of earlier tests (abandoned ones may still be ending)."""
    return {t for t in threading.enumerate() if t.name.startswith("taskq-thread-")} - other_than


def test_runs_jobs_in_parallel_on_its_threads(open_pool) -> None:
    pool, outcomes = open_pool(3)
    assert pool.name == "threads"
    assert isinstance(pool, Pool)
    assert pool.free_slots == 3
    started = time.monotonic()
    ids = [run(pool, targets.sleep_then, 0.3, i) for i in range(3)]
    assert pool.free_slots == 0
    assert [outcomes.wait(task_id).value for task_id in ids] == [0, 1, 2]
    assert time.monotonic() - started < 0.55, "the three sleeps overlapped"
    wait_until(lambda: pool.free_slots == 3)


def test_jobs_beyond_the_threads_wait_their_turn(open_pool) -> None:
    pool, outcomes = open_pool(1)
    ids = [run(pool, targets.steps, 0.05, i) for i in range(3)]
    assert pool.free_slots == 0
    assert [outcomes.wait(task_id).value for task_id in ids] == [0, 1, 2]
    wait_until(lambda: pool.free_slots == 1)
    assert len(outcomes.seen) == 3


def test_soft_time_limit_is_raised_inside_the_job(open_pool) -> None:
    pool, outcomes = open_pool()
    started = time.monotonic()
    task_id = run(pool, targets.soft_cleanup, 5.0, soft_time_limit=0.2)
    assert outcomes.wait(task_id) == JobOutcome(task_id, "done", "cleaned up")
    assert 0.18 <= time.monotonic() - started < 2.0
    task_id = run(pool, targets.soft_cleanup, 0.3)
    assert outcomes.wait(task_id).value == "finished", "no stray exception from the last job"


def test_hard_time_limit_reports_timeout_even_if_the_job_swallows_it(open_pool) -> None:
    pool, outcomes = open_pool()
    started = time.monotonic()
    task_id = run(pool, targets.swallow_hard_limit, 5.0, time_limit=0.2)
    outcome = outcomes.wait(task_id)
    assert outcome.outcome == "timeout"
    assert "0.2s" in outcome.value
    assert 0.18 <= time.monotonic() - started < 2.0
    wait_until(lambda: pool.free_slots == 1)
    assert outcomes.wait(run(pool, targets.add, 1, 2)).value == 3


def test_soft_then_hard_limit(open_pool) -> None:
    pool, outcomes = open_pool()
    task_id = run(pool, targets.outlive_soft_limit, 5.0, soft_time_limit=0.1, time_limit=0.3)
    assert outcomes.wait(task_id).outcome == "timeout"


def test_terminate_raises_task_revoked_in_the_thread(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool()
    started = tmp_path / "started"
    task_id = run(pool, targets.wait_for_file, str(started), str(tmp_path / "never"))
    wait_until(started.exists)
    assert pool.terminate(task_id) is True
    outcome = outcomes.wait(task_id)
    assert outcome.outcome == "terminated"
    assert TaskRevokedError.__name__ in outcome.value
    assert pool.terminate(task_id) is False
    assert outcomes.wait(run(pool, targets.add, 1, 2)).value == 3
    assert len(outcomes.of(task_id)) == 1


def test_terminate_drops_a_queued_job(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool()
    release = tmp_path / "release"
    busy = run(pool, targets.wait_for_file, str(tmp_path / "started"), str(release))
    queued = run(pool, targets.add, 1, 1)
    assert pool.terminate(queued) is True
    assert outcomes.wait(queued) == JobOutcome(queued, "terminated", "terminated before it started")
    release.touch()
    assert outcomes.wait(busy).value == "released"
    assert len(outcomes.of(queued)) == 1


def test_an_exception_escaping_the_target_is_lost_with_its_traceback(open_pool, caplog) -> None:
    pool, outcomes = open_pool()
    with caplog.at_level(logging.ERROR, logger="taskq_worker.pools"):
        outcome = outcomes.wait(run(pool, targets.fail, "worker bug"))
    assert outcome.outcome == "lost"
    assert "ValueError: worker bug" in outcome.value
    assert "worker bug" in caplog.text
    assert outcomes.wait(run(pool, targets.add, 1, 2)).value == 3


def test_a_failing_callback_is_logged_and_the_thread_carries_on(caplog) -> None:
    seen: list[JobOutcome] = []

    def on_outcome(outcome: JobOutcome) -> None:
        seen.append(outcome)
        raise RuntimeError("callback bug")

    pool = ThreadPool(1)
    pool.start(on_outcome)
    try:
        with caplog.at_level(logging.ERROR, logger="taskq_worker.pools"):
            pool.apply(PoolJob("a", targets.add, (1, 1)))
            pool.apply(PoolJob("b", targets.add, (2, 2)))
            wait_until(lambda: len(seen) == 2)
        assert [o.value for o in seen] == [2, 4]
        assert "callback bug" in caplog.text
    finally:
        pool.stop()


def test_grow_and_shrink_change_the_threads(open_pool, tmp_path) -> None:
    before = pool_threads()
    pool, outcomes = open_pool(1)
    pool.grow(2)
    assert pool.free_slots == 3
    wait_until(lambda: len(pool_threads(before)) == 3)
    starts = [tmp_path / f"s{i}" for i in range(3)]
    release = tmp_path / "release"
    ids = [run(pool, targets.wait_for_file, str(s), str(release)) for s in starts]
    wait_until(lambda: all(s.exists() for s in starts))
    pool.shrink(2)
    assert pool.free_slots == 0
    release.touch()
    assert {outcomes.wait(task_id).value for task_id in ids} == {"released"}
    wait_until(lambda: len(pool_threads(before)) == 1)
    assert pool.free_slots == 1
    with pytest.raises(ValueError, match="cannot shrink"):
        pool.shrink(2)


def test_stop_with_wait_lets_running_jobs_finish(open_pool) -> None:
    before = pool_threads()
    pool, outcomes = open_pool(2)
    running = run(pool, targets.sleep_then, 0.3, "finished")
    started = time.monotonic()
    pool.stop(wait=True)
    assert time.monotonic() - started >= 0.25
    assert outcomes.of(running) == [JobOutcome(running, "done", "finished")]
    assert not pool_threads(before), "its threads ended"
    assert pool.free_slots == 0
    with pytest.raises(RuntimeError, match="not running"):
        run(pool, targets.add, 1, 1)


def test_stop_without_wait_reports_lost_at_once(open_pool, tmp_path) -> None:
    before = pool_threads()
    pool, outcomes = open_pool(1)
    started = tmp_path / "started"
    running = run(pool, targets.wait_for_file, str(started), str(tmp_path / "never"))
    queued = run(pool, targets.add, 1, 1)
    wait_until(started.exists)
    pool.stop(wait=False)
    assert outcomes.of(running) == [JobOutcome(running, "lost", "the pool stopped without waiting")]
    assert outcomes.of(queued) == [
        JobOutcome(queued, "lost", "the pool stopped before the job started")
    ]
    wait_until(lambda: not pool_threads(before))  # WorkerLostError ended the job's thread
    assert len(outcomes.seen) == 2, "the abandoned job is not reported twice"


def test_stop_without_wait_escalates_a_waiting_stop(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool(1)
    started = tmp_path / "started"
    running = run(pool, targets.wait_for_file, str(started), str(tmp_path / "never"))
    wait_until(started.exists)
    warm = threading.Thread(target=pool.stop, kwargs={"wait": True})
    warm.start()
    time.sleep(0.1)
    assert warm.is_alive(), "the warm stop waits for the job"
    pool.stop(wait=False)
    warm.join(2)
    assert not warm.is_alive()
    assert outcomes.wait(running).outcome == "lost"


def test_max_tasks_and_memory_options_are_accepted_and_ignored() -> None:
    pool = ThreadPool(1, max_tasks_per_child=1, max_memory_per_child=1, initializer=None)
    outcomes = targets.Outcomes()
    pool.start(outcomes)
    try:
        ids = [run(pool, targets.add, i, i) for i in range(3)]
        assert [outcomes.wait(task_id).value for task_id in ids] == [0, 2, 4]
    finally:
        pool.stop()


def test_worker_lost_error_is_what_an_abandoned_job_sees(open_pool) -> None:
    pool, _ = open_pool(1)
    raised: list[BaseException] = []
    ready = threading.Event()

    def target() -> None:
        ready.set()
        try:
            targets.steps(5.0)
        except WorkerLostError as exc:
            raised.append(exc)

    pool.apply(PoolJob("x", target, ()))
    ready.wait(5)
    pool.stop(wait=False)
    wait_until(lambda: raised)
