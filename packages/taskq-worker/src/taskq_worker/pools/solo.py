"""The solo pool: each task runs in the thread that calls :meth:`SoloPool.apply`.

No concurrency and no isolation, but no overhead either, and a debugger or profiler sees the
task where the worker runs it (Celery's ``-P solo``). ``apply`` returns once the job ended and
its outcome was reported, on the calling thread.

Time limits: from the main thread, ``SIGALRM`` raises ``SoftTimeLimitExceeded`` and then
``TimeLimitExceeded`` inside the task, interrupting blocking calls too; from any other thread, a
watchdog thread raises them asynchronously, which reaches a task blocked in C code only when it
returns to Python. Either way a task that catches ``TimeLimitExceeded`` and carries on cannot be
stopped; the job is reported ``timeout`` once it returns.

What it cannot do: :meth:`~SoloPool.terminate` returns False (there is nothing to kill but the
worker itself), :meth:`~SoloPool.grow` and :meth:`~SoloPool.shrink` raise
``NotImplementedError``, and ``stop(wait=False)`` does not interrupt a running task. The
``concurrency`` argument is checked and ignored, and so are ``max_tasks_per_child``,
``max_memory_per_child`` and ``initializer`` (there is no child process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from taskq.contracts import JobOutcome, PoolJob

from .alarm import alarm_available, run_with_alarm
from .jobs import Fate, Ran, check_job, job_outcome
from .options import check_concurrency, parse_options
from .slots import Slot, Watchdog

__all__ = ["SoloPool"]


class SoloPool:
    """Runs one job at a time, inline; see the module docstring for what it cannot do."""

    name = "solo"

    def __init__(self, concurrency: int = 1, **options: Any) -> None:
        check_concurrency(self.name, concurrency)
        parse_options(self.name, options)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._on_outcome: Callable[[JobOutcome], None] | None = None
        self._stopped = False
        #: The thread running a job, if one runs.
        self._running_in: int | None = None
        #: The slot of a job run off the main thread, for the watchdog.
        self._slots: list[Slot] = []
        self._watchdog = Watchdog(self._lock, self._slots, "taskq-solo-timer")

    def start(self, on_outcome: Callable[[JobOutcome], None]) -> None:
        with self._lock:
            if self._on_outcome is not None or self._stopped:
                raise RuntimeError("the solo pool was already started")
            self._on_outcome = on_outcome

    def apply(self, job: PoolJob) -> None:
        """Run ``job`` to its end and report it, before returning."""
        check_job(job)
        with self._lock:
            on_outcome = self._usable()
            if self._running_in is not None:
                raise RuntimeError(
                    "the solo pool is already running a job; apply only while free_slots > 0"
                )
            self._running_in = threading.get_ident()
        try:
            ran, fate = self._run(job)
        finally:
            with self._lock:
                self._running_in = None
                self._slots.clear()
                self._idle.notify_all()
        on_outcome(job_outcome(job, ran, fate))

    def terminate(self, task_id: str, signum: int | None = None) -> bool:
        """Always False: the solo pool cannot stop the thread it runs in."""
        return False

    def grow(self, n: int = 1) -> None:
        raise NotImplementedError("the solo pool runs one task at a time; it cannot grow")

    def shrink(self, n: int = 1) -> None:
        raise NotImplementedError("the solo pool runs one task at a time; it cannot shrink")

    @property
    def free_slots(self) -> int:
        """1 when started, idle and not stopped, else 0."""
        with self._lock:
            idle = self._on_outcome is not None and self._running_in is None
            return 1 if idle and not self._stopped else 0

    def stop(self, *, wait: bool = True) -> None:
        """Refuse new jobs; with ``wait``, wait for one running in another thread to end."""
        with self._lock:
            self._stopped = True
            if wait:
                self._idle.wait_for(lambda: self._running_in in (None, threading.get_ident()))
            self._watchdog.close()

    def _usable(self) -> Callable[[JobOutcome], None]:
        if self._stopped:
            raise RuntimeError("the solo pool is stopped")
        if self._on_outcome is None:
            raise RuntimeError("start() the solo pool before applying jobs")
        return self._on_outcome

    def _run(self, job: PoolJob) -> tuple[Ran, Fate | None]:
        if (job.soft_time_limit is None and job.time_limit is None) or alarm_available():
            return run_with_alarm(job, enforce_hard=True)  # without limits, a plain call
        slot = Slot(threading.get_ident())
        with self._lock:
            self._slots.append(slot)
            if slot.begin(job):
                self._watchdog.arm()
        return slot.run(job, self._lock)
