"""Waiting for a store that cannot notify, without burning CPU or adding latency.

SQLite has no way to tell another process that a row arrived, so its readers poll. Two tools
keep that cheap: :class:`Backoff` starts with short sleeps (a busy queue is answered at once)
and stretches them while nothing happens (an idle worker costs a few queries a second), and
:class:`Wakeup` lets a writer in the *same* process cut a reader's sleep short, so a client and
a worker sharing a process (tests, the threads pool) see each other's writes at once.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["Backoff", "Wakeup", "wakeup_for"]


class Backoff:
    """Sleep lengths that double from ``start`` up to ``maximum``."""

    __slots__ = ("_current", "maximum", "start")

    def __init__(self, start: float, maximum: float) -> None:
        self.start = min(start, maximum)
        self.maximum = maximum
        self._current = self.start

    def next(self) -> float:
        """The next sleep; each call doubles the following one, up to the maximum."""
        delay = self._current
        self._current = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start short again, after finding work."""
        self._current = self.start


class Wakeup:
    """A condition that in-process writers signal and pollers sleep on.

    A poller reads :attr:`generation` *before* it looks for work and passes it to :meth:`wait`;
    a write signalled in between bumps the generation, so the wait returns at once instead of
    missing the signal and sleeping a full poll interval.
    """

    __slots__ = ("__weakref__", "_cond", "generation")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds unless something was signalled since ``seen``."""
        if timeout <= 0:
            return
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)


class _Registry:
    """The process's wakeups, by database file and channel; dropped when nobody holds one."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # Also the fork hook: a lock held by another thread at fork time would stay held
        # forever in the child, and the parent's waiters do not exist there.
        self._lock = threading.Lock()
        self._wakeups: weakref.WeakValueDictionary[tuple[str, str], Wakeup] = (
            weakref.WeakValueDictionary()
        )

    def get(self, key: tuple[str, str]) -> Wakeup:
        with self._lock:
            found = self._wakeups.get(key)
            if found is None:
                found = self._wakeups[key] = Wakeup()
            return found


_registry = _Registry()
os.register_at_fork(after_in_child=_registry.reset)


def wakeup_for(path: str, channel: str) -> Wakeup:
    """The process-wide :class:`Wakeup` for ``channel`` (``"messages"``, ...) of one database.

    Every transport and backend instance on the same file shares it. Callers look it up each
    time rather than keep it, so a forked child never uses its parent's.
    """
    return _registry.get((path, channel))
