# pyright: strict
"""Running one function on several threads at once and getting every result or error back.

A bare ``threading.Thread`` swallows its exception (it only logs it), so a failed assertion in
a worker thread would pass the test; :func:`run_in_threads` re-raises it in the test's thread.
All threads start together behind a barrier, which is what makes races likely to show.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_in_threads"]

T = TypeVar("T")


def run_in_threads(target: Callable[[int], T], count: int, *, timeout: float = 60.0) -> list[T]:
    """Call ``target(i)`` for ``i`` in ``range(count)``, each on its own thread, all at once.

    Returns the results in ``i`` order. If threads raised, the error of the lowest ``i`` is
    re-raised here; a thread still running after ``timeout`` seconds fails the call.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count!r}")
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}

    def run(index: int) -> None:
        try:
            barrier.wait(timeout)
            results[index] = target(index)
        except BaseException as exc:  # handed to the caller's thread below
            errors[index] = exc

    threads = [
        threading.Thread(target=run, args=(i,), name=f"taskq-testing-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            raise AssertionError(f"{thread.name} still running after {timeout:g}s")
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(count)]
