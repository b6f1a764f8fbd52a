"""The prefork pool with real child processes: outcomes, limits, deaths, recycling, resizing."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq.contracts import JobOutcome, Pool, PoolJob
from taskq_worker.pools.prefork import PreforkPool

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # children unpickle targets by module name

import worker_pool_targets as targets  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="prefork needs fork()")


@pytest.fixture
def open_pool() -> Iterator[Callable[..., tuple[PreforkPool, targets.Outcomes]]]:
    pools: list[PreforkPool] = []

    def open_(concurrency: int = 1, **options: Any) -> tuple[PreforkPool, targets.Outcomes]:
        pool, outcomes = PreforkPool(concurrency, **options), targets.Outcomes()
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


def result(pool: Pool, outcomes: targets.Outcomes, target: Callable[..., Any], *args: Any) -> Any:
    outcome = outcomes.wait(run(pool, target, *args))
    assert outcome.outcome == "done", outcome
    return outcome.value


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_runs_the_target_in_a_child_and_reports_its_value(open_pool) -> None:
    pool, outcomes = open_pool()
    assert pool.name == "prefork"
    assert isinstance(pool, Pool)
    task_id = run(pool, targets.add, 2, 3)
    assert outcomes.wait(task_id) == JobOutcome(task_id, "done", 5)
    assert result(pool, outcomes, targets.getpid) != os.getpid()
    wait_until(lambda: pool.free_slots == 1)
    assert len(outcomes.seen) == 2


def test_children_run_jobs_in_parallel(open_pool) -> None:
    pool, outcomes = open_pool(2)
    assert pool.free_slots == 2, "start() returns once every child is ready"
    started = time.monotonic()
    first, second = run(pool, targets.sleep_then, 0.4, 1), run(pool, targets.sleep_then, 0.4, 2)
    assert pool.free_slots == 0
    assert [outcomes.wait(first).value, outcomes.wait(second).value] == [1, 2]
    assert time.monotonic() - started < 0.75, "the two sleeps overlapped"


def test_jobs_beyond_the_idle_children_wait_in_the_parent(open_pool) -> None:
    pool, outcomes = open_pool(1)
    ids = [run(pool, targets.steps, 0.05, i) for i in range(3)]
    assert pool.free_slots == 0
    assert [outcomes.wait(task_id).value for task_id in ids] == [0, 1, 2]
    wait_until(lambda: pool.free_slots == 1)


def test_soft_time_limit_is_raised_inside_the_job(open_pool) -> None:
    pool, outcomes = open_pool()
    started = time.monotonic()
    task_id = run(pool, targets.soft_cleanup_blocking, 5.0, soft_time_limit=0.2)
    assert outcomes.wait(task_id) == JobOutcome(task_id, "done", "cleaned up")
    assert 0.18 <= time.monotonic() - started < 2.0, "SIGALRM interrupted the blocking sleep"
    assert result(pool, outcomes, targets.soft_cleanup, 0.3) == "finished", "no stray alarm"


def test_hard_time_limit_kills_and_replaces_the_child(open_pool) -> None:
    pool, outcomes = open_pool()
    before = result(pool, outcomes, targets.getpid)
    started = time.monotonic()
    task_id = run(pool, targets.sleep_then, 10.0, "never", time_limit=0.3)
    outcome = outcomes.wait(task_id)
    assert outcome.outcome == "timeout"
    assert "0.3s" in outcome.value
    assert 0.28 <= time.monotonic() - started < 2.0
    wait_until(lambda: not alive(before))
    after = result(pool, outcomes, targets.getpid)
    assert after != before
    assert len(outcomes.of(task_id)) == 1
    # The replacement was forked by the supervisor thread; its soft limit works all the same.
    soft = run(pool, targets.soft_cleanup_blocking, 5.0, soft_time_limit=0.1)
    assert outcomes.wait(soft).value == "cleaned up"


def test_a_job_that_outlives_its_soft_limit_meets_the_hard_one(open_pool) -> None:
    pool, outcomes = open_pool()
    task_id = run(pool, targets.outlive_soft_limit, 10.0, soft_time_limit=0.1, time_limit=0.3)
    assert outcomes.wait(task_id).outcome == "timeout"
    # A soft limit at or past the hard one never fires: the job times out, nothing escapes it.
    task_id = run(pool, targets.soft_cleanup, 10.0, soft_time_limit=0.5, time_limit=0.3)
    assert outcomes.wait(task_id).outcome == "timeout"


def test_terminate_kills_the_child_with_sigterm_and_replaces_it(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool()
    before = result(pool, outcomes, targets.getpid)
    started, release = tmp_path / "started", tmp_path / "release"
    task_id = run(pool, targets.wait_for_file, str(started), str(release))
    wait_until(started.exists)
    assert pool.terminate(task_id) is True
    assert outcomes.wait(task_id) == JobOutcome(task_id, "terminated", "terminated by SIGTERM")
    assert pool.terminate(task_id) is False
    assert result(pool, outcomes, targets.getpid) != before


def test_terminate_with_sigkill(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool()
    started = tmp_path / "started"
    task_id = run(pool, targets.wait_for_file, str(started), str(tmp_path / "never"))
    wait_until(started.exists)
    assert pool.terminate(task_id, signal.SIGKILL) is True
    assert outcomes.wait(task_id).value == "terminated by SIGKILL"
    with pytest.raises(ValueError, match="12345"):
        pool.terminate(task_id, 12345)


def test_terminate_drops_a_job_still_waiting_for_a_child(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool()
    release = tmp_path / "release"
    busy = run(pool, targets.wait_for_file, str(tmp_path / "started"), str(release))
    waiting = run(pool, targets.add, 1, 1)
    assert pool.terminate(waiting) is True
    assert outcomes.wait(waiting).outcome == "terminated"
    release.touch()
    assert outcomes.wait(busy).value == "released"
    time.sleep(0.05)
    assert len(outcomes.of(waiting)) == 1


@pytest.mark.parametrize(
    ("target", "arg", "how"),
    [
        (targets.exit_now, 3, "exited with code 3"),
        (targets.kill_self, signal.SIGKILL, "was killed by SIGKILL"),
        (targets.kill_self, signal.SIGUSR1, "was killed by SIGUSR1"),
    ],
)
def test_a_child_that_dies_mid_job_is_lost_and_replaced(open_pool, target, arg, how) -> None:
    pool, outcomes = open_pool()
    before = result(pool, outcomes, targets.getpid)
    task_id = run(pool, target, arg)
    outcome = outcomes.wait(task_id)
    assert outcome.outcome == "lost"
    assert outcome.value == f"the child process {before} {how}"
    assert result(pool, outcomes, targets.getpid) != before
    assert pool.free_slots == 1


def test_an_idle_child_that_dies_is_replaced(open_pool) -> None:
    pool, outcomes = open_pool()
    before = result(pool, outcomes, targets.getpid)
    os.kill(before, signal.SIGKILL)
    wait_until(lambda: not alive(before))
    assert result(pool, outcomes, targets.getpid) != before
    assert len(outcomes.seen) == 2, "an idle death reports nothing"


def test_children_ignore_sigint(open_pool) -> None:
    pool, outcomes = open_pool()
    assert result(pool, outcomes, targets.sigint_self_then, "carried on") == "carried on"


def test_an_exception_escaping_the_target_is_lost_with_its_traceback(open_pool) -> None:
    pool, outcomes = open_pool()
    task_id = run(pool, targets.fail, "worker bug")
    outcome = outcomes.wait(task_id)
    assert outcome.outcome == "lost"
    assert "ValueError: worker bug" in outcome.value
    assert "Traceback" in outcome.value
    assert result(pool, outcomes, targets.add, 1, 2) == 3, "the child carries on"


def test_an_unpicklable_return_value_is_lost(open_pool) -> None:
    pool, outcomes = open_pool()
    outcome = outcomes.wait(run(pool, targets.unpicklable))
    assert outcome.outcome == "lost"
    assert "cannot be pickled" in outcome.value


def test_an_unpicklable_job_is_refused_by_apply(open_pool) -> None:
    pool, outcomes = open_pool()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pool.apply(PoolJob("x", lambda: 1, ()))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pool.apply(PoolJob("y", targets.add, (targets.unpicklable(), 1)))
    assert pool.free_slots == 1
    assert result(pool, outcomes, targets.add, 1, 2) == 3
    assert outcomes.of("x") == outcomes.of("y") == []


def test_max_tasks_per_child_replaces_a_child_after_n_jobs(open_pool) -> None:
    pool, outcomes = open_pool(1, max_tasks_per_child=2)
    pids = [result(pool, outcomes, targets.getpid) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_max_memory_per_child_replaces_a_child_after_the_job_that_grew_it(open_pool) -> None:
    pool, outcomes = open_pool(1)
    from taskq_worker.pools.child import peak_rss_kib

    baseline = result(pool, outcomes, peak_rss_kib)
    pool.stop()
    pool, outcomes = open_pool(1, max_memory_per_child=baseline + 32 * 1024)
    first = result(pool, outcomes, targets.getpid)
    assert result(pool, outcomes, targets.getpid) == first, "a small job keeps the child"
    assert result(pool, outcomes, targets.allocate, 64) == 64 << 20, "the big job finishes"
    assert result(pool, outcomes, targets.getpid) != first


def test_initializer_runs_once_in_each_new_child(open_pool, tmp_path) -> None:
    log = tmp_path / "inits"
    pool, outcomes = open_pool(2, initializer=functools.partial(targets.record_pid, str(log)))
    pids = {int(line) for line in log.read_text().split()}
    assert len(pids) == 2
    assert os.getpid() not in pids
    assert outcomes.wait(run(pool, targets.exit_now, 1)).outcome == "lost"
    wait_until(lambda: pool.free_slots == 2)
    lines = log.read_text().split()
    assert len(lines) == len(set(lines)) == 3


@pytest.mark.parametrize(
    ("initializer", "match"),
    [
        (targets.broken_initializer, "initializer raised:.*cannot reach the database"),
        (functools.partial(targets.exit_now, 7), "exited with code 7 before it was ready"),
    ],
)
def test_a_child_that_cannot_start_makes_start_fail(initializer, match) -> None:
    pool = PreforkPool(2, initializer=initializer)
    with pytest.raises(RuntimeError, match=f"(?s){match}"):
        pool.start(targets.Outcomes())
    assert pool.free_slots == 0
    with pytest.raises(RuntimeError, match="not running"):
        pool.apply(PoolJob("x", targets.add, (1, 2)))


def test_a_replacement_that_cannot_start_is_forked_again_later(open_pool, tmp_path) -> None:
    marker = tmp_path / "database-down"
    pool, outcomes = open_pool(
        1, initializer=functools.partial(targets.broken_if_exists, str(marker))
    )
    marker.touch()
    assert outcomes.wait(run(pool, targets.exit_now, 1)).outcome == "lost"
    time.sleep(0.2)
    assert pool.free_slots == 0, "the replacement failed its initializer"
    marker.unlink()
    wait_until(lambda: pool.free_slots == 1, timeout=5.0)
    assert result(pool, outcomes, targets.add, 1, 2) == 3


def test_stop_with_wait_lets_the_running_job_finish(open_pool) -> None:
    pool, outcomes = open_pool(2)
    pids = [result(pool, outcomes, targets.getpid) for _ in range(2)]
    task_id = run(pool, targets.sleep_then, 0.3, "finished")
    started = time.monotonic()
    pool.stop(wait=True)
    assert time.monotonic() - started >= 0.25
    assert outcomes.of(task_id) == [JobOutcome(task_id, "done", "finished")]
    assert pool.free_slots == 0
    assert not any(alive(pid) for pid in pids), "every child was reaped"
    with pytest.raises(RuntimeError, match="not running"):
        run(pool, targets.add, 1, 1)


def test_stop_without_wait_kills_children_and_reports_their_jobs_lost(open_pool) -> None:
    pool, outcomes = open_pool(2)
    pid = result(pool, outcomes, targets.getpid)
    running = run(pool, targets.sleep_then, 10.0, "never")
    busy = run(pool, targets.sleep_then, 10.0, "never")
    queued = run(pool, targets.add, 1, 1)
    started = time.monotonic()
    pool.stop(wait=False)
    assert time.monotonic() - started < 1.0
    assert outcomes.of(running)[0].outcome == outcomes.of(busy)[0].outcome == "lost"
    assert outcomes.of(queued) == [
        JobOutcome(queued, "lost", "the pool stopped before the job started")
    ]
    assert not alive(pid)
    pool.stop(wait=True)  # a second stop is harmless
    assert len(outcomes.seen) == 4


def test_grow_and_shrink(open_pool, tmp_path) -> None:
    pool, outcomes = open_pool(1)
    pool.grow(2)
    wait_until(lambda: pool.free_slots == 3)
    releases = [tmp_path / f"release{i}" for i in range(3)]
    starts = [tmp_path / f"started{i}" for i in range(3)]
    ids = [
        run(pool, targets.wait_for_file, str(s), str(r))
        for s, r in zip(starts, releases, strict=True)
    ]
    wait_until(lambda: all(s.exists() for s in starts))  # three at once
    pool.shrink(2)  # all busy: two of them leave after their job
    for release in releases:
        release.touch()
    assert {outcomes.wait(task_id).value for task_id in ids} == {"released"}
    wait_until(lambda: pool.free_slots == 1)
    time.sleep(0.1)
    assert pool.free_slots == 1, "no replacement for the retired children"
    pool.shrink(1)
    wait_until(lambda: pool.free_slots == 0)
    pool.grow(1)
    assert result(pool, outcomes, targets.add, 2, 2) == 4
    with pytest.raises(ValueError, match="cannot shrink"):
        pool.shrink(5)
    with pytest.raises(ValueError, match="at least 1"):
        pool.grow(0)


def test_the_child_inherits_what_the_parent_imported(open_pool) -> None:
    pool, outcomes = open_pool()
    assert result(pool, outcomes, targets.getpid) != os.getpid()
    assert "worker_pool_targets" in sys.modules
