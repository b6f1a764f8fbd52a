# pyright: strict
"""Job targets for the pool suite: module-level functions, so prefork children can unpickle them.

The suite steers a running job across threads *and* processes with files: a job touches its
``started`` file when it begins and runs until its ``release`` file appears. Every target sleeps
in short steps, because a threads pool can only interrupt Python code between bytecodes (an
asynchronous exception cannot break into one long ``sleep``), and every wait gives up after a
bound, so a pool that cannot stop a job never hangs the test run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from taskq.exceptions import SoftTimeLimitExceeded

__all__ = [
    "add",
    "block",
    "catch_soft_time_limit",
    "exit_process",
    "RELEASED",
    "GAVE_UP",
    "SOFT_LIMIT_CAUGHT",
    "UNDISTURBED",
]

#: What :func:`block` returns when its release file appeared.
RELEASED = "released"
#: What :func:`block` returns when nobody released it in time.
GAVE_UP = "gave up"
#: What :func:`catch_soft_time_limit` returns when the soft limit was raised inside it.
SOFT_LIMIT_CAUGHT = "soft time limit caught"
#: What :func:`catch_soft_time_limit` returns when it ran its course undisturbed.
UNDISTURBED = "undisturbed"

_STEP = 0.005


def add(x: int, y: int) -> int:
    return x + y


def block(started: str, release: str, give_up_after: float) -> str:
    """Signal that the job runs, then wait for ``release`` (or ``give_up_after`` seconds)."""
    Path(started).touch()
    deadline = time.monotonic() + give_up_after
    while not os.path.exists(release):
        if time.monotonic() >= deadline:
            return GAVE_UP
        time.sleep(_STEP)
    return RELEASED


def catch_soft_time_limit(started: str, run_for: float) -> str:
    """Run for ``run_for`` seconds, saying whether ``SoftTimeLimitExceeded`` interrupted it."""
    Path(started).touch()
    deadline = time.monotonic() + run_for
    try:
        while time.monotonic() < deadline:
            time.sleep(_STEP)
    except SoftTimeLimitExceeded:
        return SOFT_LIMIT_CAUGHT
    return UNDISTURBED


def exit_process(code: int) -> None:
    """End the process running the job at once, as a segfault or the OOM killer would."""
    os._exit(code)
