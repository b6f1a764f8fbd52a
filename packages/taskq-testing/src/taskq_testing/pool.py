# pyright: strict
"""The conformance suite every :class:`taskq.contracts.Pool` runs.

A pool subclasses :class:`PoolConformance` as ``Test...`` and provides one fixture,
``open_pool``: a function ``(concurrency) -> Pool`` that builds a new, unstarted pool. The suite
starts it, applies jobs whose targets live in :mod:`taskq_testing.pool_targets` (picklable, so
prefork children can run them), and stops it.

What a pool cannot do is declared with class attributes: the solo pool runs each job inline
and cannot terminate one; only a pool of processes survives a job that kills its process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest

from taskq.contracts import JobOutcome, Pool, PoolJob
from taskq_testing import pool_targets
from taskq_testing.waiting import wait_until

__all__ = ["PoolConformance", "PoolOpener", "Outcomes", "PoolRunner"]


class PoolOpener(Protocol):
    """Builds a new, unstarted pool running ``concurrency`` jobs at once."""

    def __call__(self, concurrency: int) -> Pool: ...


class Outcomes:
    """Every :class:`JobOutcome` a pool reported, from whichever thread reported it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: list[JobOutcome] = []

    def __call__(self, outcome: JobOutcome) -> None:
        with self._cond:
            self._seen.append(outcome)
            self._cond.notify_all()

    def of(self, task_id: str) -> list[JobOutcome]:
        with self._cond:
            return [o for o in self._seen if o.task_id == task_id]

    def wait_for(self, task_id: str, timeout: float) -> JobOutcome:
        """The first outcome of ``task_id``, waiting up to ``timeout`` seconds for it."""
        with self._cond:
            found = self._cond.wait_for(lambda: self.of(task_id), timeout)
        if not found:
            raise AssertionError(f"no outcome for job {task_id} within {timeout:g}s")
        return found[0]


class PoolRunner:
    """A started pool with its outcomes, and the files that steer its blocking jobs."""

    def __init__(self, pool: Pool, outcomes: Outcomes, workdir: Path) -> None:
        self.pool = pool
        self.outcomes = outcomes
        self.stopped = False
        self._workdir = workdir
        self._blockers: list[str] = []

    def job(
        self,
        target: Callable[..., Any],
        *args: Any,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> str:
        """Apply ``target(*args)`` as a new job; returns its task id."""
        task_id = str(uuid.uuid4())
        self.pool.apply(PoolJob(task_id, target, args, soft_time_limit, time_limit))
        return task_id

    def blocker(self, *, time_limit: float | None = None, give_up_after: float = 30.0) -> str:
        """Apply a job that runs until :meth:`release`; returns its task id."""
        task_id = str(uuid.uuid4())
        self._blockers.append(task_id)
        self.pool.apply(
            PoolJob(
                task_id,
                pool_targets.block,
                (str(self.started_file(task_id)), str(self._release_file(task_id)), give_up_after),
                time_limit=time_limit,
            )
        )
        return task_id

    def started_file(self, task_id: str) -> Path:
        return self._workdir / f"{task_id}.started"

    def _release_file(self, task_id: str) -> Path:
        return self._workdir / f"{task_id}.release"

    def wait_started(self, task_id: str, timeout: float) -> None:
        wait_until(self.started_file(task_id).exists, timeout, message=f"job {task_id} started")

    def release(self, task_id: str) -> None:
        self._release_file(task_id).touch()

    def release_all(self) -> None:
        for task_id in self._blockers:
            self.release(task_id)

    def stop(self, *, wait: bool) -> None:
        self.stopped = True
        self.pool.stop(wait=wait)


class PoolConformance:
    """Every documented semantic of :class:`~taskq.contracts.Pool`, as tests.

    Subclass it as ``TestMyPool`` and define the ``open_pool`` fixture; override the class
    attributes below where the pool differs.
    """

    #: ``apply`` runs the job to the end before it returns (the solo pool).
    runs_inline: ClassVar[bool] = False
    #: ``terminate`` can stop a running job.
    supports_terminate: ClassVar[bool] = True
    #: ``soft_time_limit`` raises ``SoftTimeLimitExceeded`` inside the job.
    supports_soft_time_limit: ClassVar[bool] = True
    #: ``time_limit`` stops the job and reports ``timeout``.
    supports_hard_time_limit: ClassVar[bool] = True
    #: A job whose process dies is reported ``lost`` and the pool carries on (processes only).
    survives_process_exit: ClassVar[bool] = False
    #: ``grow`` and ``shrink`` change how many jobs run at once.
    resizable: ClassVar[bool] = True
    #: How long the suite waits for the pool to act (start a job, report an outcome, replace a
    #: process) before it fails the test.
    latency: ClassVar[float] = 5.0

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def open_pool(self) -> PoolOpener:
        pytest.fail(
            f"{type(self).__name__} must define the `open_pool` fixture: a function "
            "(concurrency) -> Pool that builds a new, unstarted pool"
        )

    @pytest.fixture
    def start_pool(
        self, open_pool: PoolOpener, tmp_path: Path
    ) -> Iterator[Callable[[int], PoolRunner]]:
        """Opens and starts pools; releases their jobs and stops them after the test."""
        runners: list[PoolRunner] = []

        def start(concurrency: int) -> PoolRunner:
            pool, outcomes = open_pool(concurrency), Outcomes()
            pool.start(outcomes)
            runner = PoolRunner(pool, outcomes, tmp_path)
            runners.append(runner)
            return runner

        yield start
        for runner in runners:
            runner.release_all()
            if not runner.stopped:
                runner.stop(wait=False)

    @pytest.fixture
    def runner(self, start_pool: Callable[[int], PoolRunner]) -> PoolRunner:
        """A started pool running one job at a time."""
        return start_pool(1)

    # -- helpers ---------------------------------------------------------------------------

    def _skip_unless(self, capable: bool, attribute: str) -> None:
        if not capable:
            pytest.skip(f"{type(self).__name__}.{attribute} is False")

    def _require_concurrency(self) -> None:
        if self.runs_inline:
            pytest.skip(f"{type(self).__name__}.runs_inline: no job runs beside the test")

    def assert_still_works(self, runner: PoolRunner, concurrency: int) -> None:
        """The pool is back to full capacity and runs a new job."""
        wait_until(
            lambda: runner.pool.free_slots == concurrency,
            self.latency,
            message=f"free_slots back to {concurrency}",
        )
        task_id = runner.job(pool_targets.add, 20, 22)
        assert runner.outcomes.wait_for(task_id, self.latency) == JobOutcome(task_id, "done", 42)

    # -- the contract's shape --------------------------------------------------------------

    def test_is_a_pool(self, runner: PoolRunner) -> None:
        assert isinstance(runner.pool, Pool)
        assert isinstance(runner.pool.name, str)
        assert runner.pool.name

    # -- running jobs ----------------------------------------------------------------------

    def test_apply_runs_the_target_and_reports_done(self, runner: PoolRunner) -> None:
        task_id = runner.job(pool_targets.add, 2, 3)
        assert runner.outcomes.wait_for(task_id, self.latency) == JobOutcome(task_id, "done", 5)
        time.sleep(0.1)
        assert len(runner.outcomes.of(task_id)) == 1, "one job, one outcome"

    def test_every_job_reports_once(self, start_pool: Callable[[int], PoolRunner]) -> None:
        concurrency = 1 if self.runs_inline else 3
        runner = start_pool(concurrency)
        expected: dict[str, int] = {}
        for i in range(30):
            wait_until(lambda: runner.pool.free_slots > 0, self.latency, message="a free slot")
            expected[runner.job(pool_targets.add, i, i)] = 2 * i
        for task_id, value in expected.items():
            assert runner.outcomes.wait_for(task_id, self.latency).value == value
        assert all(len(runner.outcomes.of(task_id)) == 1 for task_id in expected)
        wait_until(lambda: runner.pool.free_slots == concurrency, self.latency, message="idle")

    def test_inline_pool_finishes_before_apply_returns(self, runner: PoolRunner) -> None:
        self._skip_unless(self.runs_inline, "runs_inline")
        task_id = runner.job(pool_targets.add, 1, 1)
        assert runner.outcomes.of(task_id) == [JobOutcome(task_id, "done", 2)]
        assert runner.pool.free_slots == 1

    def test_free_slots_follow_running_jobs(self, start_pool: Callable[[int], PoolRunner]) -> None:
        self._require_concurrency()
        runner = start_pool(2)
        assert runner.pool.free_slots == 2
        first = runner.blocker()
        assert runner.pool.free_slots == 1, "a job counts as soon as apply returns"
        second = runner.blocker()
        assert runner.pool.free_slots == 0
        runner.wait_started(first, self.latency)
        runner.wait_started(second, self.latency)  # both run at once
        runner.release(first)
        done = runner.outcomes.wait_for(first, self.latency)
        assert done == JobOutcome(first, "done", pool_targets.RELEASED)
        wait_until(lambda: runner.pool.free_slots == 1, self.latency, message="a slot freed")
        runner.release(second)
        assert runner.outcomes.wait_for(second, self.latency).outcome == "done"
        wait_until(lambda: runner.pool.free_slots == 2, self.latency, message="all slots free")

    # -- time limits -----------------------------------------------------------------------

    def test_soft_time_limit_raises_inside_the_job(
        self, runner: PoolRunner, tmp_path: Path
    ) -> None:
        self._skip_unless(self.supports_soft_time_limit, "supports_soft_time_limit")
        started = time.monotonic()
        task_id = runner.job(
            pool_targets.catch_soft_time_limit,
            str(tmp_path / "soft.started"),
            self.latency * 2,
            soft_time_limit=0.3,
        )
        outcome = runner.outcomes.wait_for(task_id, self.latency + 0.3)
        assert outcome == JobOutcome(task_id, "done", pool_targets.SOFT_LIMIT_CAUGHT)
        assert time.monotonic() - started >= 0.3 * 0.9, "raised before the soft limit"

    def test_limits_of_a_finished_job_do_not_reach_the_next(
        self, runner: PoolRunner, tmp_path: Path
    ) -> None:
        self._skip_unless(self.supports_soft_time_limit, "supports_soft_time_limit")
        quick = runner.job(pool_targets.add, 1, 2, soft_time_limit=0.2, time_limit=0.4)
        assert runner.outcomes.wait_for(quick, self.latency).value == 3
        wait_until(lambda: runner.pool.free_slots == 1, self.latency, message="a free slot")
        calm = runner.job(pool_targets.catch_soft_time_limit, str(tmp_path / "calm.started"), 0.8)
        outcome = runner.outcomes.wait_for(calm, self.latency + 0.8)
        assert outcome == JobOutcome(calm, "done", pool_targets.UNDISTURBED)

    def test_hard_time_limit_reports_timeout(self, runner: PoolRunner) -> None:
        self._skip_unless(self.supports_hard_time_limit, "supports_hard_time_limit")
        started = time.monotonic()
        task_id = runner.blocker(time_limit=0.3, give_up_after=self.latency * 2)
        outcome = runner.outcomes.wait_for(task_id, self.latency + 0.3)
        assert outcome.outcome == "timeout"
        assert time.monotonic() - started >= 0.3 * 0.9, "stopped before the time limit"
        self.assert_still_works(runner, 1)
        assert len(runner.outcomes.of(task_id)) == 1, "one job, one outcome"

    # -- terminate -------------------------------------------------------------------------

    def test_terminate_stops_a_running_job(self, runner: PoolRunner) -> None:
        self._require_concurrency()
        self._skip_unless(self.supports_terminate, "supports_terminate")
        task_id = runner.blocker()
        runner.wait_started(task_id, self.latency)
        assert runner.pool.terminate(task_id) is True
        assert runner.outcomes.wait_for(task_id, self.latency).outcome == "terminated"
        assert runner.pool.terminate(task_id) is False, "it no longer runs"
        self.assert_still_works(runner, 1)
        assert len(runner.outcomes.of(task_id)) == 1, "one job, one outcome"

    def test_terminate_of_an_unknown_job_is_false(self, runner: PoolRunner) -> None:
        assert runner.pool.terminate(str(uuid.uuid4())) is False

    def test_terminate_of_a_finished_job_is_false(self, runner: PoolRunner) -> None:
        task_id = runner.job(pool_targets.add, 1, 1)
        runner.outcomes.wait_for(task_id, self.latency)
        wait_until(lambda: runner.pool.free_slots == 1, self.latency, message="a free slot")
        assert runner.pool.terminate(task_id) is False

    # -- a dying process -------------------------------------------------------------------

    def test_a_job_that_kills_its_process_is_lost(self, runner: PoolRunner) -> None:
        self._skip_unless(self.survives_process_exit, "survives_process_exit")
        task_id = runner.job(pool_targets.exit_process, 13)
        assert runner.outcomes.wait_for(task_id, self.latency).outcome == "lost"
        self.assert_still_works(runner, 1)

    # -- resizing --------------------------------------------------------------------------

    def test_grow_and_shrink(self, runner: PoolRunner) -> None:
        self._require_concurrency()
        self._skip_unless(self.resizable, "resizable")
        runner.pool.grow(2)
        wait_until(lambda: runner.pool.free_slots == 3, self.latency, message="grown to 3")
        jobs = [runner.blocker() for _ in range(3)]
        for task_id in jobs:
            runner.wait_started(task_id, self.latency)  # all three at once
        runner.release_all()
        for task_id in jobs:
            assert runner.outcomes.wait_for(task_id, self.latency).outcome == "done"
        runner.pool.shrink(2)
        self.assert_still_works(runner, 1)

    # -- stop ------------------------------------------------------------------------------

    def test_stop_with_wait_finishes_running_jobs(self, runner: PoolRunner) -> None:
        self._require_concurrency()
        task_id = runner.blocker()
        runner.wait_started(task_id, self.latency)
        releaser = threading.Timer(0.3, runner.release, (task_id,))
        releaser.start()
        try:
            runner.stop(wait=True)
        finally:
            releaser.join()
        assert runner.outcomes.of(task_id) == [JobOutcome(task_id, "done", pool_targets.RELEASED)]

    def test_stop_without_wait_does_not_wait_for_jobs(self, runner: PoolRunner) -> None:
        self._require_concurrency()
        task_id = runner.blocker()
        runner.wait_started(task_id, self.latency)
        started = time.monotonic()
        runner.stop(wait=False)
        elapsed = time.monotonic() - started
        assert elapsed < self.latency, f"stop(wait=False) took {elapsed:.3f}s"
