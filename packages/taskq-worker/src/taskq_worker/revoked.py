"""The task ids this worker was told to revoke, bounded in number and in age.

A revoke is broadcast once; the message it names may arrive much later (an ETA, a long queue),
so the id is remembered. Not forever: like Celery's ``LimitedSet``, at most 50,000 ids for at
most three hours, oldest forgotten first, so a stream of revokes cannot grow the worker.
Used from the consumer thread only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

__all__ = ["RevokedIds"]


class RevokedIds:
    """A set of task ids whose members expire after ``expires`` seconds."""

    __slots__ = ("_ids", "expires", "maxlen")

    def __init__(self, maxlen: int = 50_000, expires: float = 10_800.0) -> None:
        self.maxlen = maxlen
        self.expires = expires
        # id -> when it is forgotten; insertion order is age order (re-adding moves to the end).
        self._ids: dict[str, float] = {}

    def add(self, task_ids: Iterable[str]) -> None:
        now = time.monotonic()
        until = now + self.expires
        ids = self._ids
        for task_id in task_ids:
            ids.pop(task_id, None)
            ids[task_id] = until
        self._purge(now)

    def __contains__(self, task_id: str) -> bool:
        ids = self._ids
        if not ids:
            return False
        until = ids.get(task_id)
        if until is None:
            return False
        if until < time.monotonic():
            del ids[task_id]
            return False
        return True

    def __len__(self) -> int:
        self._purge(time.monotonic())
        return len(self._ids)

    def ids(self) -> list[str]:
        self._purge(time.monotonic())
        return list(self._ids)

    def _purge(self, now: float) -> None:
        ids = self._ids
        while len(ids) > self.maxlen:
            del ids[next(iter(ids))]
        while ids:
            oldest = next(iter(ids))
            if ids[oldest] >= now:
                break
            del ids[oldest]
