"""The threads pool: ``concurrency`` threads of the worker's process run the tasks.

Cheap to start and good for I/O-bound tasks (Celery's ``-P threads``). Jobs beyond the free
threads wait in a queue, so ``apply`` never blocks; ``free_slots`` counts them, so a worker
that respects it never makes anything wait.

Python cannot kill a thread, so limits and ``terminate`` are asynchronous exceptions raised in
the task's thread (:mod:`.asyncexc`): ``SoftTimeLimitExceeded`` at the soft limit,
``TimeLimitExceeded`` at the hard one (outcome ``timeout``), ``TaskRevokedError`` for
``terminate`` (outcome ``terminated``; ``signum`` is ignored, a thread has no signals). The
outcome is reported when the thread leaves the task, and decided by what was done to it even if
the task caught the exception. The caveat: a thread blocked in C code (one long ``sleep``, a
socket read) raises only when it returns to Python, and a task that swallows the exception and
carries on keeps its thread.

``stop(wait=True)`` runs every job applied, queued ones included. ``stop(wait=False)`` reports
queued jobs ``lost`` (never started), raises ``WorkerLostError`` in every running task, reports
those jobs ``lost`` at once and returns without waiting; their threads are daemons, abandoned
to finish on their own. ``max_tasks_per_child``, ``max_memory_per_child`` and ``initializer`` are
accepted and ignored: there are no child processes.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from taskq.contracts import JobOutcome, PoolJob
from taskq.exceptions import TaskRevokedError, WorkerLostError

from .jobs import check_job, job_outcome, never_started
from .options import check_concurrency, check_count, parse_options
from .slots import Slot, Watchdog

__all__ = ["ThreadPool"]

logger = logging.getLogger("taskq_worker.pools")

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


class ThreadPool:
    """Runs jobs on a resizable set of daemon threads; see the module docstring."""

    name = "threads"

    def __init__(self, concurrency: int, **options: Any) -> None:
        self._size = check_concurrency(self.name, concurrency)
        parse_options(self.name, options)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # idle threads wait for jobs here
        self._settled = threading.Condition(self._lock)  # stop(wait=True) waits here
        self._state = _NEW
        self._on_outcome: Callable[[JobOutcome], None] | None = None
        self._queue: deque[PoolJob] = deque()
        self._slots: list[Slot] = []
        self._threads: list[threading.Thread] = []
        self._alive = 0  # threads started and not yet retired
        self._busy = 0  # jobs taken by a thread and not yet settled
        self._started = 0  # for thread names
        self._watchdog = Watchdog(self._lock, self._slots, "taskq-threads-timer")

    def start(self, on_outcome: Callable[[JobOutcome], None]) -> None:
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(f"the threads pool cannot start: it is {self._state}")
            self._state = _RUNNING
            self._on_outcome = on_outcome
            threads = self._hire()
        for thread in threads:
            thread.start()

    def apply(self, job: PoolJob) -> None:
        """Queue ``job`` for the next free thread and return at once."""
        check_job(job)
        with self._lock:
            if self._state != _RUNNING:
                raise RuntimeError(f"the threads pool is not running (it is {self._state})")
            self._queue.append(job)
            self._work.notify()

    def terminate(self, task_id: str, signum: int | None = None) -> bool:
        """Raise ``TaskRevokedError`` in the job's thread (or drop it from the queue)."""
        if signum is not None:
            signal.Signals(signum)  # a bad number is a ValueError, as with the other pools
        dropped: list[JobOutcome] = []
        found = False
        with self._lock:
            for job in [job for job in self._queue if job.task_id == task_id]:
                self._queue.remove(job)
                dropped.append(JobOutcome(task_id, "terminated", "terminated before it started"))
            for slot in self._slots:
                if slot.job is not None and slot.job.task_id == task_id:
                    fate = ("terminated", "terminated: TaskRevokedError raised in its thread")
                    found = slot.interrupt(TaskRevokedError, fate) or found
        for outcome in dropped:
            self._report(outcome)
        return found or bool(dropped)

    def grow(self, n: int = 1) -> None:
        check_count(self.name, "grow", n)
        with self._lock:
            self._size += n
            threads = self._hire() if self._state == _RUNNING else []
        for thread in threads:
            thread.start()

    def shrink(self, n: int = 1) -> None:
        """Retire ``n`` threads: idle ones at once, busy ones after their job."""
        check_count(self.name, "shrink", n)
        with self._lock:
            if n > self._size:
                raise ValueError(f"cannot shrink the threads pool by {n}: it has {self._size}")
            self._size -= n
            self._work.notify_all()

    @property
    def free_slots(self) -> int:
        with self._lock:
            if self._state != _RUNNING:
                return 0
            return max(0, self._size - self._busy - len(self._queue))

    def stop(self, *, wait: bool = True) -> None:
        """Run every job applied (``wait``), or abandon running ones and drop queued ones."""
        reports: list[JobOutcome] = []
        with self._lock:
            self._state = _STOPPED
            if not wait:
                reports.extend(self._drop_queue())
                reports.extend(self._abandon())
            self._work.notify_all()
            if wait:
                me = threading.get_ident()
                # From a job's own thread (an on_outcome callback), the queue cannot wait for it.
                inside = any(slot.ident == me for slot in self._slots)
                self._settled.wait_for(
                    lambda: (
                        (not self._queue or self._alive == 0 or inside)
                        and all(
                            slot.job is None or slot.abandoned or slot.ident == me
                            for slot in self._slots
                        )
                    )
                )
                reports.extend(self._drop_queue())  # what no thread was left to run
            self._watchdog.close()
            threads = list(self._threads)
        for outcome in reports:
            self._report(outcome)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _hire(self) -> list[threading.Thread]:
        """Threads to bring the pool up to its size (with the lock held); start them after."""
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        hired: list[threading.Thread] = []
        while self._alive < self._size:
            self._alive += 1
            self._started += 1
            thread = threading.Thread(
                target=self._serve, name=f"taskq-thread-{self._started}", daemon=True
            )
            self._threads.append(thread)
            hired.append(thread)
        return hired

    def _drop_queue(self) -> list[JobOutcome]:
        dropped = [never_started(job) for job in self._queue]
        self._queue.clear()
        return dropped

    def _abandon(self) -> list[JobOutcome]:
        """Give up on running jobs (with the lock held): interrupt them, report them lost."""
        lost: list[JobOutcome] = []
        for slot in self._slots:
            job = slot.job
            if job is None or slot.abandoned:
                continue
            slot.abandoned = True
            slot.interrupt(WorkerLostError, ("lost", "the pool stopped without waiting"))
            lost.append(JobOutcome(job.task_id, "lost", "the pool stopped without waiting"))
        return lost

    def _serve(self) -> None:
        slot = Slot(threading.get_ident())
        with self._lock:
            self._slots.append(slot)
        while True:
            with self._lock:
                job = self._next_job(slot)
                if job is None:
                    return
            ran, fate = slot.run(job, self._lock)
            with self._lock:
                self._busy -= 1
                abandoned, slot.abandoned = slot.abandoned, False
                self._settled.notify_all()
            if not abandoned:
                self._report(job_outcome(job, ran, fate))

    def _next_job(self, slot: Slot) -> PoolJob | None:
        """Wait for a job (with the lock held); None when this thread should end."""
        while True:
            if self._alive > self._size or (self._state != _RUNNING and not self._queue):
                self._alive -= 1
                self._slots.remove(slot)
                self._settled.notify_all()
                return None
            if self._queue:
                job = self._queue.popleft()
                self._busy += 1
                if slot.begin(job):
                    self._watchdog.arm()
                return job
            self._work.wait()

    def _report(self, outcome: JobOutcome) -> None:
        on_outcome = self._on_outcome
        assert on_outcome is not None, "jobs are only accepted after start()"
        try:
            on_outcome(outcome)
        except Exception:  # the worker's callback failing must not kill a pool thread
            logger.exception("on_outcome failed for job %s", outcome.task_id)
