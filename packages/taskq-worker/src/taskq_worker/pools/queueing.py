"""What the prefork pool offers a worker beyond the Pool contract.

The contract's ``free_slots`` counts one job per process, so a worker that respects it leaves a
process idle between two jobs for as long as the round trip through the worker takes. A
queueing pool holds several jobs per process instead: the worker asks how many it may apply now
(:attr:`~QueueingPool.room`), applies them in one call, and takes back jobs not started yet
when a plain ``revoke`` names them (:meth:`~QueueingPool.withdraw`).

A driven pool runs no thread of its own: the worker's consumer thread waits on the pool's
processes and its own events at once (:meth:`~DrivenPool.step`), so the results of the
children reach the bookkeeping without a handoff between two threads of the worker process
(which costs more than everything else the worker does per task, as they share one GIL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from taskq.contracts import JobOutcome, PoolJob

__all__ = ["DrivenPool", "QueueingPool"]


@runtime_checkable
class QueueingPool(Protocol):
    @property
    def room(self) -> int:
        """How many jobs :meth:`apply_many` can place now."""
        ...

    def apply_many(self, jobs: Sequence[PoolJob]) -> None:
        """Apply several jobs at once; returns at once."""
        ...

    def withdraw(self, task_id: str) -> bool:
        """Take back a job that has not started (reported ``terminated``, "terminated before
        it started"); False if it is running or unknown."""
        ...


@runtime_checkable
class DrivenPool(Protocol):
    def start_driven(self, on_outcome: Callable[[JobOutcome], None]) -> None:
        """Start without a thread of its own; ``stop`` finishes on the caller's thread."""
        ...

    def step(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` (None: until something happens) and handle what happened,
        reporting outcomes on this thread before returning."""
        ...

    def wake(self) -> None:
        """Make a :meth:`step` in progress return now; from any thread."""
        ...
