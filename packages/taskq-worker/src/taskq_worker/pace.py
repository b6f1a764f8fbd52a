"""How many messages a worker may hold beyond its prefetch: those it will start very soon.

Celery's ``worker_prefetch_multiplier`` bounds the messages a worker holds and has not
started, so that it does not hoard work other workers could do. For tasks that take a few
milliseconds that bound is also a pipeline depth: the pool runs dry while the worker fetches
the next few, and a worker at the default (4) spends its time waiting on hand-offs. The
window here is the room for what the worker would start within :data:`HORIZON` anyway, judged
from how fast it has been finishing tasks: at thousands of tasks a second that is dozens of
messages (capped at :data:`PER_PROCESS` per pool process), and a message held that briefly
is not kept from anyone; for tasks of :data:`HORIZON` or longer it is nothing, and the
worker holds exactly what Celery's would. It shrinks as soon as tasks slow down or the queue
empties, so a burst of long tasks after short ones is not hoarded for longer than a period.
"""

from __future__ import annotations

__all__ = ["HORIZON", "PER_PROCESS", "PERIOD", "Pace"]

#: What counts as "very soon": a message the worker would start within this many seconds.
HORIZON = 0.02
#: The most a window gives each pool process beyond the prefetch.
PER_PROCESS = 16
#: How often the finishing rate is measured (seconds).
PERIOD = 0.05


class Pace:
    """Counts finished tasks and turns their rate into a window (see the module docstring)."""

    __slots__ = ("_rate", "_since", "cap", "finished")

    def __init__(self, processes: int, now: float) -> None:
        self.cap = PER_PROCESS * processes
        #: Tasks finished since the last measure; the consumer adds to it.
        self.finished = 0
        self._since = now
        self._rate = 0.0

    def window(self, now: float) -> int | None:
        """The new window if a period passed since the last one, else None."""
        elapsed = now - self._since
        if elapsed < PERIOD:
            return None
        rate = self.finished / elapsed
        self.finished, self._since = 0, now
        # Rising, averaged with the last measure (one fast period is not a trend); falling, at
        # once (a slowdown is when holding more would hoard).
        self._rate = rate if rate < self._rate else (self._rate + rate) / 2
        return min(self.cap, int(self._rate * HORIZON))
