"""Per task type rate limits: a token bucket each, and the messages waiting for a token.

As in Celery, a limit holds for one worker (``10/s`` on three workers runs up to 30 a
second) and a bucket holds one token, so a burst is spread out rather than let through. A
message waiting for its token stays in the worker, on a timer (never polled): it counts
against the prefetch, so at most ``prefetch_multiplier * concurrency`` messages wait, and the
worker fetches no more until they go. Used from the consumer thread only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from taskq_worker.jobs import Job

__all__ = ["TokenBucket", "RateLimits"]

# A token refilled to within rounding error of whole counts as whole, so a timer set for the
# moment it refills finds it there instead of waking again nanoseconds later.
_WHOLE = 1.0 - 1e-9


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``; starts full."""

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError(f"a rate must be positive, got {rate!r}")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp: float | None = None  # the first take() sets the clock

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until there will be one."""
        stamp = now if self._stamp is None else self._stamp
        if now > stamp:
            self._tokens = min(self.capacity, self._tokens + (now - stamp) * self.rate)
        self._stamp = max(now, stamp)
        if self._tokens >= _WHOLE:
            self._tokens = max(self._tokens - 1.0, 0.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


class RateLimits:
    """Admits jobs now, or holds them per task type until their type's bucket has a token.

    ``rate_of(name)`` gives a type's configured rate in tasks per second (None: unlimited);
    it is asked once per type, and :meth:`set_rate` replaces the answer (the ``rate_limit``
    control command).
    """

    def __init__(self, rate_of: Callable[[str], float | None]) -> None:
        self._rate_of = rate_of
        self._buckets: dict[str, TokenBucket | None] = {}
        self._waiting: dict[str, deque[Job]] = {}
        #: When the first waiting job of each type may go.
        self._due: dict[str, float] = {}

    def _bucket(self, name: str) -> TokenBucket | None:
        try:
            return self._buckets[name]
        except KeyError:
            rate = self._rate_of(name)
            bucket = self._buckets[name] = None if rate is None else TokenBucket(rate)
            return bucket

    def set_rate(self, name: str, rate: float | None) -> None:
        self._buckets[name] = None if rate is None else TokenBucket(rate)
        if rate is None and name in self._due:
            self._due[name] = 0.0  # waiting jobs go at the next release

    def admit(self, job: Job, now: float) -> bool:
        """True: run ``job`` now. False: it waits here until :meth:`release` hands it back."""
        name = job.name
        waiting = self._waiting.get(name)
        if waiting is not None:
            waiting.append(job)  # behind the ones already waiting, in arrival order
            return False
        bucket = self._bucket(name)
        if bucket is None:
            return True
        wait = bucket.take(now)
        if wait == 0.0:
            return True
        self._waiting[name] = deque((job,))
        self._due[name] = now + wait
        return False

    def next_due(self) -> float | None:
        """When the next waiting job may go (monotonic time), or None when none waits."""
        return min(self._due.values()) if self._due else None

    def release(self, now: float) -> list[Job]:
        """The waiting jobs whose tokens have come, in arrival order within each type."""
        released: list[Job] = []
        for name, due in list(self._due.items()):
            if due > now:
                continue
            waiting = self._waiting[name]
            bucket = self._bucket(name)
            while waiting:
                wait = 0.0 if bucket is None else bucket.take(now)
                if wait > 0.0:
                    self._due[name] = now + wait
                    break
                released.append(waiting.popleft())
            if not waiting:
                del self._waiting[name], self._due[name]
        return released

    def remove(self, keep: Callable[[Job], bool]) -> list[Job]:
        """Take out the waiting jobs ``keep`` rejects (revoked ones); returns them."""
        removed: list[Job] = []
        for name, waiting in list(self._waiting.items()):
            kept: deque[Job] = deque()
            for job in waiting:
                (kept if keep(job) else removed).append(job)
            if kept:
                self._waiting[name] = kept
            else:
                del self._waiting[name], self._due[name]
        return removed

    def __iter__(self) -> Iterator[Job]:
        for waiting in self._waiting.values():
            yield from waiting

    def __bool__(self) -> bool:
        return bool(self._waiting)
