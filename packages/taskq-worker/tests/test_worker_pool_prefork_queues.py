"""The prefork pool's queues in its children: several jobs per child, given back when a child
cannot run them, taken back for an idle child or for ``terminate``/``withdraw``."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq.contracts import JobOutcome, PoolJob
from taskq_worker.pools.prefork import DEPTH, STEAL_AFTER, PreforkPool
from taskq_worker.pools.queueing import QueueingPool

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # children unpickle targets by module name

import worker_pool_targets as targets  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="prefork needs fork()")

Open = Callable[..., tuple[PreforkPool, targets.Outcomes]]


@pytest.fixture
def open_pool() -> Iterator[Open]:
    pools: list[PreforkPool] = []

    def open_(concurrency: int = 1, **options: Any) -> tuple[PreforkPool, targets.Outcomes]:
        pool, outcomes = PreforkPool(concurrency, **options), targets.Outcomes()
        pools.append(pool)
        pool.start(outcomes)
        return pool, outcomes

    yield open_
    for pool in pools:
        pool.stop(wait=False)


def job(target: Callable[..., Any], *args: Any, **limits: float) -> PoolJob:
    return PoolJob(str(uuid.uuid4()), target, args, **limits)


def blocker(tmp_path: Path, name: str) -> tuple[PoolJob, Path, Path]:
    started, release = tmp_path / f"{name}.started", tmp_path / f"{name}.release"
    return job(targets.wait_for_file, str(started), str(release)), started, release


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_a_child_holds_several_jobs_and_runs_them_in_order(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(1)
    assert isinstance(pool, QueueingPool)
    assert pool.room == DEPTH
    # The first job holds the child until released, so none can finish while room is read.
    first, first_started, first_release = blocker(tmp_path, "first")
    jobs = [first, *(job(targets.getpid) for _ in range(4))]
    pool.apply_many(jobs)
    wait_until(first_started.exists)
    assert pool.free_slots == 0
    assert pool.room == DEPTH - 5, "all five went to the child at once"
    first_release.touch()
    assert outcomes.wait(first.task_id).value == "released"
    pids = {outcomes.wait(j.task_id).value for j in jobs[1:]}
    assert len(pids) == 1
    assert [o.task_id for o in outcomes.seen] == [j.task_id for j in jobs], "in order"
    wait_until(lambda: pool.room == DEPTH and pool.free_slots == 1)


def test_both_threads_of_a_child_read_its_pipe_without_losing_a_job(open_pool: Open) -> None:
    """Jobs of a few milliseconds arrive while others run: the watcher thread reads the pipe
    during jobs, the main thread between them. Every job runs once, in order per child."""
    pool, outcomes = open_pool(2)
    jobs = [job(targets.sleep_then, 0.002, i) for i in range(400)]
    sent = 0
    while sent < len(jobs):
        room = pool.room
        if room:
            pool.apply_many(jobs[sent : sent + room])
            sent += room
        time.sleep(0.001)
    assert [outcomes.wait(j.task_id).value for j in jobs] == list(range(400))
    assert len(outcomes.seen) == 400
    wait_until(lambda: pool.room == 2 * DEPTH and pool.free_slots == 2)


def test_jobs_go_to_the_least_loaded_child(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(2)
    first, first_started, first_release = blocker(tmp_path, "first")
    second, second_started, second_release = blocker(tmp_path, "second")
    pool.apply_many([first, second])
    wait_until(lambda: first_started.exists() and second_started.exists())  # one each
    first_release.touch()
    second_release.touch()
    assert outcomes.wait(first.task_id).value == outcomes.wait(second.task_id).value == "released"


def test_an_unpicklable_job_refuses_the_whole_batch(open_pool: Open) -> None:
    pool, outcomes = open_pool(1)
    good = job(targets.add, 1, 2)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pool.apply_many([good, PoolJob("bad", lambda: 1, ())])
    assert pool.room == DEPTH
    time.sleep(0.1)
    assert outcomes.seen == []


def test_jobs_queued_behind_a_slow_one_go_to_an_idle_child(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(2)
    slow, slow_started, release = blocker(tmp_path, "slow")
    quick = [job(targets.add, i, i) for i in range(3)]
    # Least loaded first: the slow job and quick[1] share a child, quick[0] and quick[2] the other.
    pool.apply_many([slow, *quick])
    wait_until(slow_started.exists)
    started = time.monotonic()
    for i, j in enumerate(quick):
        assert outcomes.wait(j.task_id) == JobOutcome(j.task_id, "done", 2 * i)
    assert time.monotonic() - started < 2.0
    assert outcomes.of(slow.task_id) == [], "taken from behind the slow job, which still runs"
    release.touch()
    assert outcomes.wait(slow.task_id).value == "released"
    assert len(outcomes.seen) == 4


def test_a_job_with_a_hard_limit_waits_for_an_idle_child(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(1)
    busy, started, release = blocker(tmp_path, "busy")
    limited = job(targets.steps, 0.2, "in time", time_limit=0.5)
    pool.apply_many([busy, limited])
    wait_until(started.exists)
    time.sleep(0.6)  # longer than the limit: it must not count while the job waits
    release.touch()
    assert outcomes.wait(limited.task_id) == JobOutcome(limited.task_id, "done", "in time")


def test_jobs_a_dead_child_had_not_started_run_in_its_replacement(open_pool: Open) -> None:
    pool, outcomes = open_pool(1)
    dying = job(targets.exit_now, 3)
    after = [job(targets.add, 1, i) for i in range(3)]
    pool.apply_many([dying, *after])
    assert outcomes.wait(dying.task_id).outcome == "lost"
    assert [outcomes.wait(j.task_id).value for j in after] == [1, 2, 3]
    assert len(outcomes.seen) == 4


def test_a_retiring_child_leaves_its_queue_to_its_replacement(open_pool: Open) -> None:
    pool, outcomes = open_pool(1, max_tasks_per_child=2)
    jobs = [job(targets.getpid) for _ in range(5)]
    pool.apply_many(jobs)
    pids = [outcomes.wait(j.task_id).value for j in jobs]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(outcomes.seen) == 5


def test_terminate_takes_back_a_job_queued_in_a_child(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(1)
    busy, started, release = blocker(tmp_path, "busy")
    queued, after = job(targets.add, 1, 1), job(targets.add, 2, 2)
    pool.apply_many([busy, queued, after])
    wait_until(started.exists)
    assert pool.terminate(queued.task_id) is True
    outcome = outcomes.wait(queued.task_id)
    assert outcome == JobOutcome(queued.task_id, "terminated", "terminated before it started")
    release.touch()
    assert outcomes.wait(busy.task_id).value == "released", "the running job was left alone"
    assert outcomes.wait(after.task_id).value == 4
    time.sleep(0.05)
    assert len(outcomes.of(queued.task_id)) == 1


def test_withdraw_takes_back_only_what_has_not_started(open_pool: Open, tmp_path: Path) -> None:
    pool, outcomes = open_pool(1)
    busy, started, release = blocker(tmp_path, "busy")
    queued = job(targets.add, 1, 1)
    pool.apply_many([busy, queued])
    wait_until(started.exists)
    assert pool.withdraw(busy.task_id) is False, "running: a plain withdraw cannot stop it"
    assert pool.withdraw(queued.task_id) is True
    assert outcomes.wait(queued.task_id).outcome == "terminated"
    assert pool.withdraw(str(uuid.uuid4())) is False
    release.touch()
    assert outcomes.wait(busy.task_id).value == "released"


def test_stop_with_wait_runs_every_queued_job(open_pool: Open) -> None:
    pool, outcomes = open_pool(2)
    jobs = [job(targets.steps, 0.02, i) for i in range(10)]
    pool.apply_many(jobs)
    pool.stop(wait=True)
    assert [outcomes.of(j.task_id)[0].value for j in jobs] == list(range(10))


def test_steal_after_is_short() -> None:
    assert STEAL_AFTER <= 0.1, "a job queued behind a slow one waits at most this long"


def test_a_driven_pool_runs_on_the_callers_thread() -> None:
    """start_driven() forks no supervisor thread: step() waits on the children and reports
    on the thread that calls it, and stop() finishes there too."""
    pool, outcomes = PreforkPool(2), targets.Outcomes()
    threads = threading.active_count()
    pool.start_driven(outcomes)
    try:
        assert threading.active_count() == threads
        assert pool.free_slots == 2
        jobs = [job(targets.add, i, 1) for i in range(6)]
        pool.apply_many(jobs)
        deadline = time.monotonic() + 5
        while len(outcomes.seen) < 6 and time.monotonic() < deadline:
            pool.step(0.5)
        assert [outcomes.of(j.task_id)[0].value for j in jobs] == [1, 2, 3, 4, 5, 6]
        woken = threading.Timer(0.05, pool.wake)
        woken.start()
        started = time.monotonic()
        pool.step(None)  # nothing to do: returns when woken
        assert time.monotonic() - started < 2.0
        woken.join()
        last = job(targets.steps, 0.1, "last")
        pool.apply(last)
    finally:
        pool.stop(wait=True)
    assert outcomes.of(last.task_id) == [JobOutcome(last.task_id, "done", "last")]


def test_wake_takes_no_lock() -> None:
    """A shutdown signal's handler wakes the consumer's step() on the thread it interrupted,
    which may hold the pool's lock."""
    pool, outcomes = PreforkPool(1), targets.Outcomes()
    pool.start_driven(outcomes)
    try:

        def interrupted() -> None:
            with pool._lock:  # pyright: ignore[reportPrivateUsage]  (interrupted in here)
                pool.wake()

        thread = threading.Thread(target=interrupted, daemon=True)
        thread.start()
        thread.join(2)
        assert not thread.is_alive(), "wake() waited for the lock its own thread holds"
        started = time.monotonic()
        pool.step(5.0)  # returns at once: the wake-up is waiting
        assert time.monotonic() - started < 1.0
    finally:
        pool.stop(wait=True)
    pool.wake()  # after the pool finished: nothing to wake, no error
