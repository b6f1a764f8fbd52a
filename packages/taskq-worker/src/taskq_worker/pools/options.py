"""The options every pool takes, checked the same way, so a typo fails when the worker starts.

The worker hands any pool the same options; a pool that cannot honour one (the threads pool
has no child processes to replace) accepts and ignores it, and says so in its docstring. An
option nobody knows is a :class:`TypeError` naming it, like a bad keyword argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["PoolOptions", "check_concurrency", "check_count", "parse_options"]

_KNOWN = ("max_tasks_per_child", "max_memory_per_child", "initializer")


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """What a pool was configured with, checked."""

    #: Replace a child process after it ran this many jobs (``worker_max_tasks_per_child``).
    max_tasks_per_child: int | None = None
    #: Replace a child process once its peak resident memory passes this many KiB, after the
    #: job that pushed it there (``worker_max_memory_per_child``).
    max_memory_per_child: int | None = None
    #: Run in every new child process before its first job (``worker_process_init``).
    initializer: Callable[[], None] | None = None


def check_concurrency(pool: str, concurrency: object) -> int:
    """``concurrency`` as a positive int, or a clear error naming the pool."""
    return _positive_int(f"{pool} pool: concurrency", concurrency)


def check_count(pool: str, operation: str, n: object) -> int:
    """The ``n`` of ``grow(n)`` / ``shrink(n)`` as a positive int."""
    return _positive_int(f"{pool} pool: {operation}(n)", n)


def parse_options(pool: str, options: Mapping[str, Any]) -> PoolOptions:
    """Check ``options`` against what pools know; ``None`` means "not set"."""
    unknown = sorted(set(options) - set(_KNOWN))
    if unknown:
        raise TypeError(
            f"{pool} pool got unexpected option(s) {', '.join(map(repr, unknown))}; "
            f"pools accept {', '.join(_KNOWN)}"
        )
    max_tasks = options.get("max_tasks_per_child")
    max_memory = options.get("max_memory_per_child")
    initializer: object = options.get("initializer")
    if initializer is not None and not callable(initializer):
        raise TypeError(
            f"{pool} pool: initializer must be a callable taking no arguments, "
            f"got {type(initializer).__name__}"
        )
    return PoolOptions(
        max_tasks_per_child=None
        if max_tasks is None
        else _positive_int(f"{pool} pool: max_tasks_per_child", max_tasks),
        max_memory_per_child=None
        if max_memory is None
        else _positive_int(f"{pool} pool: max_memory_per_child (KiB)", max_memory),
        initializer=cast("Callable[[], None] | None", initializer),
    )


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be at least 1, got {value}")
    return value
