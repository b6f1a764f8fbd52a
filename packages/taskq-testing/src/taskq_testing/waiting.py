# pyright: strict
"""Waiting for something another thread, process or server does, without fixed sleeps.

A fixed ``sleep`` is either too short on a loaded CI machine or wastes time everywhere else;
polling a predicate up to a deadline is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "wait_until"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold in time (an ``AssertionError``, so it fails a test)."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.01,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Raises :class:`WaitTimeout` naming ``message`` once ``timeout`` seconds pass; the predicate
    is always called at least once and once more at the deadline.
    """
    if timeout < 0 or interval <= 0:
        raise ValueError(f"timeout must be >= 0 and interval > 0, got {timeout!r}, {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"{message} did not hold within {timeout:g}s (last: {value!r})")
        time.sleep(min(interval, remaining))
