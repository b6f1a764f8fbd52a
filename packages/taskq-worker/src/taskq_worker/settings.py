"""The worker's options: what ``Worker(...)`` was given, else the app's configuration.

Resolved once, at start, into a frozen :class:`WorkerSettings`; a wrong value raises
``ImproperlyConfigured`` naming the setting, so ``taskq worker -c 0`` fails with one line
instead of a worker that never runs anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskq.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["WorkerSettings", "resolve", "queue_names"]

#: Pools that run one task at a time whatever ``concurrency`` says.
_SINGLE = frozenset({"solo"})


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    pool: str
    concurrency: int
    #: Queues to consume (None: every queue the app declares), then those to leave out.
    queues: tuple[str, ...] | None
    exclude_queues: tuple[str, ...]
    prefetch_multiplier: int
    max_tasks_per_child: int | None
    max_memory_per_child: int | None
    time_limit: float | None
    soft_time_limit: float | None
    max_deliveries: int
    disable_rate_limits: bool
    #: ``worker_shutdown_timeout``: how long a warm shutdown waits before turning cold.
    shutdown_timeout: float | None

    @property
    def prefetch_limit(self) -> int:
        """How many tasks the worker holds at once, running or waiting to run.

        ``prefetch_multiplier * concurrency``; 0 (Celery's "no limit") holds only what the pool
        can start, because a worker that hoards messages delays them for every other worker.
        """
        return self.concurrency * max(self.prefetch_multiplier, 1)


def queue_names(value: Sequence[str] | str | None, setting: str) -> tuple[str, ...] | None:
    """``-Q a,b`` or ``["a", "b"]`` as names; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ImproperlyConfigured(setting, f"expected queue names, got {item!r}")
        name = item.strip()
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _whole(value: object, setting: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(setting, f"expected a whole number >= {minimum}, got {value!r}")
    return value


def _opt_whole(value: object, setting: str) -> int | None:
    return None if value is None else _whole(value, setting, 1)


def _opt_seconds(value: object, setting: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ImproperlyConfigured(setting, f"expected a positive number of seconds, got {value!r}")
    return float(value)


def resolve(
    app: TaskQ,
    *,
    pool: str | None,
    concurrency: int | None,
    queues: Sequence[str] | str | None,
    exclude_queues: Sequence[str] | str | None,
    prefetch_multiplier: int | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    time_limit: float | None,
    soft_time_limit: float | None,
) -> WorkerSettings:
    """Settings from the arguments, falling back to ``app.conf`` for each one left None."""
    conf = app.conf
    pool_name = pool if pool is not None else conf.worker_pool
    if not isinstance(pool_name, str) or not pool_name:
        raise ImproperlyConfigured("worker_pool", f"expected a pool name, got {pool_name!r}")
    if pool_name in _SINGLE:
        workers = 1
    else:
        wanted = concurrency if concurrency is not None else conf.worker_concurrency
        workers = (
            os.cpu_count() or 1
            if wanted is None
            else _whole(wanted, "worker_concurrency (--concurrency)", 1)
        )
    hard = _opt_seconds(
        time_limit if time_limit is not None else conf.task_time_limit,
        "task_time_limit (--time-limit)",
    )
    soft = _opt_seconds(
        soft_time_limit if soft_time_limit is not None else conf.task_soft_time_limit,
        "task_soft_time_limit (--soft-time-limit)",
    )
    if hard is not None and soft is not None and soft >= hard:
        raise ImproperlyConfigured(
            "task_soft_time_limit (--soft-time-limit)",
            f"must be less than the hard time limit ({soft:g} >= {hard:g}), or it never fires",
        )
    return WorkerSettings(
        pool=pool_name,
        concurrency=workers,
        queues=queue_names(queues, "queues (--queues)"),
        exclude_queues=queue_names(exclude_queues, "exclude_queues (--exclude-queues)") or (),
        prefetch_multiplier=_whole(
            prefetch_multiplier
            if prefetch_multiplier is not None
            else conf.worker_prefetch_multiplier,
            "worker_prefetch_multiplier (--prefetch-multiplier)",
            0,
        ),
        max_tasks_per_child=_opt_whole(
            max_tasks_per_child
            if max_tasks_per_child is not None
            else conf.worker_max_tasks_per_child,
            "worker_max_tasks_per_child (--max-tasks-per-child)",
        ),
        max_memory_per_child=_opt_whole(
            max_memory_per_child
            if max_memory_per_child is not None
            else conf.worker_max_memory_per_child,
            "worker_max_memory_per_child (--max-memory-per-child)",
        ),
        time_limit=hard,
        soft_time_limit=soft,
        max_deliveries=_whole(conf.worker_max_deliveries, "worker_max_deliveries", 1),
        disable_rate_limits=bool(conf.worker_disable_rate_limits),
        shutdown_timeout=_opt_seconds(conf.worker_shutdown_timeout, "worker_shutdown_timeout"),
    )
