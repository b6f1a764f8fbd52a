"""Time limits by ``SIGALRM``, for a job running in a process's main thread.

The solo pool uses it when the worker runs it from the main thread, and every prefork child
uses it for the soft limit (the parent enforces the hard one by killing the child). A signal
beats an asynchronous exception here: it also interrupts a blocking system call, so a task
sleeping or waiting on a socket gets ``SoftTimeLimitExceeded`` on time.

It borrows ``SIGALRM`` and ``ITIMER_REAL`` for the length of one job and gives them back; when
something else holds them (a timer is already armed), :func:`alarm_available` says no and the
solo pool falls back to its watchdog thread.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from taskq.contracts import PoolJob
from taskq.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from .jobs import Fate, Ran, limits, timed_out

__all__ = ["alarm_available", "run_with_alarm"]


def alarm_available() -> bool:
    """Whether this thread may use ``SIGALRM`` now: the main thread, with no timer armed."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


class _Alarm:
    """The ``SIGALRM`` handler for one job: soft limit first, then the hard one."""

    def __init__(self, job: PoolJob, soft_at: float | None, hard_at: float | None) -> None:
        self.job = job
        self.soft_at = soft_at
        self.hard_at = hard_at
        self.active = True
        self.fate: Fate | None = None

    def first_delay(self) -> float:
        due = self.soft_at if self.soft_at is not None else self.hard_at
        assert due is not None
        return max(due - time.monotonic(), 1e-6)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.active:
            return  # the job ended just as the timer fired
        if self.soft_at is not None:
            self.soft_at = None
            if self.hard_at is not None:
                signal.setitimer(signal.ITIMER_REAL, max(self.hard_at - time.monotonic(), 1e-6))
            raise SoftTimeLimitExceeded()
        self.active = False
        self.fate = timed_out(self.job)
        raise TimeLimitExceeded()


def run_with_alarm(job: PoolJob, *, enforce_hard: bool) -> tuple[Ran, Fate | None]:
    """Call the target in this (main) thread under its limits; the fate is set on a timeout.

    Without ``enforce_hard`` only the soft limit is armed: a prefork child leaves the hard
    one to its parent, which kills it.
    """
    soft, hard = limits(job)
    if not enforce_hard:
        hard = None
    ran = Ran()
    if soft is None and hard is None:
        try:
            ran.value = job.target(*job.args)
        except BaseException as exc:  # reported as the job's outcome
            ran.error = exc
        return ran, None
    now = time.monotonic()
    alarm = _Alarm(job, None if soft is None else now + soft, None if hard is None else now + hard)
    previous = signal.signal(signal.SIGALRM, alarm.on_signal)
    try:
        signal.setitimer(signal.ITIMER_REAL, alarm.first_delay())
        ran.value = job.target(*job.args)
    except BaseException as exc:  # reported as the job's outcome
        ran.error = exc
    while True:
        try:
            alarm.active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            return ran, alarm.fate
        except (SoftTimeLimitExceeded, TimeLimitExceeded):
            continue
