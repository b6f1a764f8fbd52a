"""What a pool that queues jobs in its processes offers a worker beyond the Pool contract.

The contract's ``free_slots`` counts one job per process, so a worker that respects it leaves a
process idle between two jobs for as long as the round trip through the worker takes. A
queueing pool (prefork) holds several jobs per process instead: the worker asks how many it
may apply now (:attr:`~QueueingPool.room`), applies them in one call, and takes back jobs not
started yet when a plain ``revoke`` names them (:meth:`~QueueingPool.withdraw`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from taskq.contracts import PoolJob

__all__ = ["QueueingPool"]


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
