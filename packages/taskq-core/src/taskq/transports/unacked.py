"""A transport's deliveries not yet settled, which ``close()`` gives back to their queues."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from taskq.contracts import Delivery

__all__ = ["Unacked"]

H = TypeVar("H")


class Unacked(Generic[H]):
    """Thread-safe set of the handles (``Delivery.handle``) this transport handed out."""

    def __init__(self, kind: type[H], transport: str) -> None:
        self._kind = kind
        self._transport = transport
        self._lock = threading.Lock()
        self._handles: set[H] = set()

    def add(self, deliveries: Iterable[Delivery]) -> None:
        with self._lock:
            self._handles.update(self.handles(deliveries))

    def handles(self, deliveries: Iterable[Delivery]) -> list[H]:
        """The handles of ``deliveries``; ValueError for one another transport handed out."""
        found: list[H] = []
        for delivery in deliveries:
            if not isinstance(delivery.handle, self._kind):
                raise ValueError(
                    f"delivery {delivery.tag!r} did not come from a {self._transport} transport"
                )
            found.append(delivery.handle)
        return found

    def settled(self, handles: Iterable[H]) -> None:
        with self._lock:
            self._handles.difference_update(handles)

    def take_all(self) -> list[H]:
        """Every unsettled handle, forgotten here (``close()`` returns them to their queues)."""
        with self._lock:
            taken = list(self._handles)
            self._handles.clear()
        return taken

    def take_where(self, wanted: Callable[[H], bool]) -> list[H]:
        """The unsettled handles ``wanted`` selects, forgotten here (a deleted queue's)."""
        with self._lock:
            taken = [handle for handle in self._handles if wanted(handle)]
            self._handles.difference_update(taken)
        return taken
