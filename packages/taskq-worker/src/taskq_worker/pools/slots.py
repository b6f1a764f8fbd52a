"""A thread running jobs that other threads may interrupt, and the watchdog that times them.

Used by the threads pool (one :class:`Slot` per thread) and by the solo pool when it runs off
the main thread, where ``SIGALRM`` is not available. Interrupting is an asynchronous exception
(:mod:`.asyncexc`): ``SoftTimeLimitExceeded`` at the soft limit, ``TimeLimitExceeded`` at the
hard one, ``TaskRevokedError`` for ``terminate``.

Every field of a slot is guarded by its pool's lock. The delicate moment is a job's end: an
exception may have been scheduled just as the target returned, and must not land in the pool's
own code. :meth:`Slot.run` first stops further interrupts (``job = None``, which the firing
side checks under the lock), then clears whatever is still pending, and swallows one that lands
while it does so. One that lands on the very return of the target replaces its value: the job
is then reported by its fate (``timeout``, ``terminated``), or as ``lost`` for a soft limit,
as any exception escaping the target is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

from taskq.contracts import PoolJob
from taskq.exceptions import (
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)

from .asyncexc import clear_pending, raise_in_thread
from .jobs import Fate, Ran, limits, timed_out

__all__ = ["INTERRUPTS", "Slot", "Watchdog"]

#: Everything a slot's thread may be made to raise.
INTERRUPTS = (SoftTimeLimitExceeded, TimeLimitExceeded, TaskRevokedError, WorkerLostError)


class Slot:
    """One thread's current job, its deadlines, and how it was stopped (if it was)."""

    __slots__ = ("abandoned", "fate", "hard_at", "ident", "interrupted", "job", "soft_at")

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.job: PoolJob | None = None
        self.soft_at: float | None = None
        self.hard_at: float | None = None
        self.fate: Fate | None = None
        self.interrupted = False
        #: The pool stopped without waiting and already reported this job as lost.
        self.abandoned = False

    def begin(self, job: PoolJob) -> bool:
        """Take ``job`` (with the lock held); True if it has a time limit to watch."""
        soft, hard = limits(job)
        now = time.monotonic()
        self.job = job
        self.soft_at = None if soft is None else now + soft
        self.hard_at = None if hard is None else now + hard
        self.fate = None
        self.interrupted = False
        return soft is not None or hard is not None

    def interrupt(self, exc_type: type[BaseException], fate: Fate | None = None) -> bool:
        """Make the running job raise ``exc_type`` (with the lock held); False if none runs.

        A ``fate`` decides the outcome whatever the target then does (it may well catch the
        exception and return normally); the first fate wins and ends the job's limits.
        """
        if self.job is None:
            return False
        if fate is not None:
            if self.fate is not None:
                return True
            self.fate = fate
            self.soft_at = self.hard_at = None
        self.interrupted = True
        raise_in_thread(self.ident, exc_type)
        return True

    def expire(self, now: float) -> float | None:
        """Fire the limits due at ``now`` (with the lock held); returns the next deadline."""
        job = self.job
        if job is None:
            return None
        if self.hard_at is not None and now >= self.hard_at:
            self.interrupt(TimeLimitExceeded, timed_out(job))
        elif self.soft_at is not None and now >= self.soft_at:
            self.soft_at = None
            self.interrupt(SoftTimeLimitExceeded)
        return _earliest(self.soft_at, self.hard_at)

    def run(self, job: PoolJob, lock: threading.Lock) -> tuple[Ran, Fate | None]:
        """Call the target in this thread (the slot's own), after :meth:`begin`."""
        ran = Ran()
        try:
            ran.value = job.target(*job.args)
        except BaseException as exc:  # reported as the job's outcome
            ran.error = exc
        while True:
            try:
                self.job = None
                with lock:
                    if self.interrupted:
                        self.interrupted = False
                        clear_pending(self.ident)
                    fate, self.fate = self.fate, None
                return ran, fate
            except INTERRUPTS:
                continue


class Watchdog:
    """One daemon thread that fires the time limits of the jobs running in a pool's slots.

    It shares the pool's lock, sleeps until the earliest deadline, and is woken by
    :meth:`arm` when a job with a limit begins. Started on first use: a pool whose tasks have
    no limits never has one.
    """

    def __init__(self, lock: threading.Lock, slots: Collection[Slot], name: str) -> None:
        self._changed = threading.Condition(lock)
        self._slots = slots
        self._name = name
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self) -> None:
        """A slot began a job with a time limit (call with the lock held)."""
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
            self._thread.start()
        else:
            self._changed.notify()

    def close(self) -> None:
        """End the thread (call with the lock held); limits no longer fire."""
        self._closed = True
        self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                due: float | None = None
                for slot in self._slots:
                    due = _earliest(due, slot.expire(now))
                self._changed.wait(None if due is None else due - now)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
