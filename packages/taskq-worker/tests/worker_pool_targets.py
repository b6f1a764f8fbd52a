"""Job targets and an outcome recorder for the pool tests.

Targets are module-level functions, so prefork children can unpickle them. Those that must be
interruptible by the threads pool sleep in short steps: an asynchronous exception reaches a
thread only between bytecodes, never inside one long ``sleep``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from taskq.contracts import JobOutcome
from taskq.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

STEP = 0.005


class Outcomes:
    """Records what a pool reports, from any thread, and waits for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seen: list[JobOutcome] = []

    def __call__(self, outcome: JobOutcome) -> None:
        with self._cond:
            self.seen.append(outcome)
            self._cond.notify_all()

    def of(self, task_id: str) -> list[JobOutcome]:
        with self._cond:
            return [o for o in self.seen if o.task_id == task_id]

    def wait(self, task_id: str, timeout: float = 5.0) -> JobOutcome:
        with self._cond:
            if not self._cond.wait_for(lambda: self.of(task_id), timeout):
                raise AssertionError(f"no outcome for {task_id} within {timeout}s")
            return self.of(task_id)[0]


def add(x: int, y: int) -> int:
    return x + y


def getpid() -> int:
    return os.getpid()


def sleep_then(seconds: float, value: Any) -> Any:
    """One blocking sleep: only a signal interrupts it."""
    time.sleep(seconds)
    return value


def steps(seconds: float, value: Any = "finished") -> Any:
    """Sleep in short steps, so an asynchronous exception can land."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(STEP)
    return value


def wait_for_file(started: str, release: str, give_up_after: float = 10.0) -> str:
    """Touch ``started``, then wait (in steps) until ``release`` exists."""
    Path(started).touch()
    deadline = time.monotonic() + give_up_after
    while not os.path.exists(release):
        if time.monotonic() >= deadline:
            return "gave up"
        time.sleep(STEP)
    return "released"


def soft_cleanup(seconds: float) -> str:
    """What a task does with its soft limit: catch it and clean up."""
    try:
        steps(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


def soft_cleanup_blocking(seconds: float) -> str:
    """The same around one blocking call, which only a signal interrupts."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


def outlive_soft_limit(seconds: float) -> str:
    """Catches the soft limit and carries on regardless."""
    try:
        steps(seconds)
    except SoftTimeLimitExceeded:
        steps(seconds)
    return "finished"


def swallow_hard_limit(seconds: float) -> str:
    """Catches TimeLimitExceeded and returns: the job still timed out."""
    try:
        steps(seconds)
    except TimeLimitExceeded:
        return "swallowed"
    return "finished"


def fail(message: str) -> None:
    raise ValueError(message)


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(5)


def allocate(mib: int) -> int:
    """Touch ``mib`` MiB (``bytes * n`` writes every page, so it is resident)."""
    block = b"\x01" * (mib << 20)
    return len(block)


def unpicklable() -> Any:
    return threading.Lock()


def record_pid(path: str) -> None:
    """An initializer: one line per child that ran it."""
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")


def broken_initializer() -> None:
    raise RuntimeError("cannot reach the database")


def broken_if_exists(path: str) -> None:
    """An initializer that fails while ``path`` exists."""
    if os.path.exists(path):
        raise RuntimeError("cannot reach the database")


def sigint_self_then(value: Any) -> Any:
    """A child ignores SIGINT: the job carries on."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)
    return value
