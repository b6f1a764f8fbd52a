"""The solo pool: inline runs, limits by SIGALRM on the main thread and by a watchdog elsewhere."""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskq.contracts import JobOutcome, Pool, PoolJob
from taskq_worker.pools.solo import SoloPool

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import worker_pool_targets as targets  # noqa: E402


@pytest.fixture
def pool() -> tuple[SoloPool, targets.Outcomes]:
    pool, outcomes = SoloPool(4), targets.Outcomes()
    pool.start(outcomes)
    return pool, outcomes


def apply(pool: Pool, target: Callable[..., Any], *args: Any, **limits: float) -> str:
    task_id = str(uuid.uuid4())
    pool.apply(PoolJob(task_id, target, args, **limits))
    return task_id


def in_thread(function: Callable[[], Any]) -> Any:
    """Run ``function`` off the main thread and return what it returned."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(function()))
    thread.start()
    thread.join(10)
    assert results, "the function did not return"
    return results[0]


def test_apply_runs_the_job_before_returning(pool) -> None:
    solo, outcomes = pool
    assert solo.name == "solo"
    assert isinstance(solo, Pool)
    assert solo.free_slots == 1
    seen_inside: list[int] = []
    task_id = apply(solo, lambda: seen_inside.append(solo.free_slots) or "ran")
    assert outcomes.seen == [JobOutcome(task_id, "done", "ran")]
    assert seen_inside == [0], "busy while the job runs"
    assert solo.free_slots == 1


def test_soft_limit_on_the_main_thread_interrupts_a_blocking_call(pool) -> None:
    solo, outcomes = pool
    assert threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    task_id = apply(solo, targets.soft_cleanup_blocking, 5.0, soft_time_limit=0.2)
    assert outcomes.seen == [JobOutcome(task_id, "done", "cleaned up")]
    assert 0.18 <= time.monotonic() - started < 2.0
    assert signal.getsignal(signal.SIGALRM) is previous, "the handler is given back"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "no timer left armed"


def test_hard_limit_on_the_main_thread_reports_timeout(pool) -> None:
    solo, outcomes = pool
    started = time.monotonic()
    task_id = apply(solo, targets.sleep_then, 5.0, "never", time_limit=0.2)
    assert outcomes.of(task_id)[0].outcome == "timeout"
    assert time.monotonic() - started < 2.0, "SIGALRM interrupted the blocking sleep"
    task_id = apply(solo, targets.outlive_soft_limit, 5.0, soft_time_limit=0.1, time_limit=0.3)
    assert outcomes.of(task_id)[0].outcome == "timeout"
    task_id = apply(solo, targets.swallow_hard_limit, 5.0, time_limit=0.2)
    assert outcomes.of(task_id)[0].outcome == "timeout", "even when the job swallows it"
    apply(solo, targets.add, 1, 1)
    assert outcomes.seen[-1].value == 2


def test_limits_off_the_main_thread_use_the_watchdog(pool) -> None:
    solo, outcomes = pool
    soft = in_thread(lambda: apply(solo, targets.soft_cleanup, 5.0, soft_time_limit=0.2))
    assert outcomes.of(soft) == [JobOutcome(soft, "done", "cleaned up")]
    hard = in_thread(lambda: apply(solo, targets.steps, 5.0, time_limit=0.2))
    assert outcomes.of(hard)[0].outcome == "timeout"
    calm = in_thread(lambda: apply(solo, targets.soft_cleanup, 0.3))
    assert outcomes.of(calm)[0].value == "finished", "no stray exception from earlier jobs"


def test_an_armed_timer_makes_it_use_the_watchdog(pool) -> None:
    solo, outcomes = pool
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        task_id = apply(solo, targets.soft_cleanup, 5.0, soft_time_limit=0.2)
        assert outcomes.of(task_id)[0].value == "cleaned up"
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 25, "someone else's timer untouched"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_exception_escaping_the_target_is_lost(pool) -> None:
    solo, outcomes = pool
    task_id = apply(solo, targets.fail, "worker bug")
    assert outcomes.of(task_id)[0].outcome == "lost"
    assert "ValueError: worker bug" in outcomes.of(task_id)[0].value


def test_what_it_cannot_do(pool) -> None:
    solo, outcomes = pool
    assert solo.terminate("anything") is False
    with pytest.raises(NotImplementedError, match="cannot grow"):
        solo.grow()
    with pytest.raises(NotImplementedError, match="cannot shrink"):
        solo.shrink()
    inner: list[BaseException] = []

    def reenter() -> None:
        try:
            apply(solo, targets.add, 1, 1)
        except RuntimeError as exc:
            inner.append(exc)

    apply(solo, reenter)
    assert "already running" in str(inner[0])
    assert [o.outcome for o in outcomes.seen] == ["done"], "the refused job owes no outcome"


def test_stop_waits_for_a_job_running_in_another_thread(pool) -> None:
    solo, outcomes = pool
    runner = threading.Thread(target=apply, args=(solo, targets.sleep_then, 0.3, "finished"))
    runner.start()
    time.sleep(0.05)
    assert solo.free_slots == 0
    started = time.monotonic()
    solo.stop(wait=True)
    assert time.monotonic() - started >= 0.2
    assert [o.value for o in outcomes.seen] == ["finished"]
    runner.join()
    assert solo.free_slots == 0
    with pytest.raises(RuntimeError, match="stopped"):
        apply(solo, targets.add, 1, 1)


def test_apply_before_start_is_refused() -> None:
    with pytest.raises(RuntimeError, match="start"):
        apply(SoloPool(1), targets.add, 1, 1)
