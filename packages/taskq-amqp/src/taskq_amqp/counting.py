"""How often a message was handed out, where classic queues only say "not the first time".

Quorum queues count in ``x-delivery-count``; classic queues set the ``redelivered`` flag
only. For those, each transport remembers how often it saw a redelivered message itself
(by queue and task id), so a message that keeps coming back to the same worker shows a
growing count; across processes the count is at least 2 once redelivered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

__all__ = ["DeliveryCounter", "message_key"]


def message_key(
    queue: str, headers: Mapping[str, Any], properties: Mapping[str, Any]
) -> str | None:
    for value in (
        headers.get("id"),
        properties.get("correlation_id"),
        properties.get("message_id"),
    ):
        if isinstance(value, str) and value:
            return f"{queue}\x00{value}"
    return None


class DeliveryCounter:
    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def count(self, key: str | None, *, redelivered: bool, broker_count: int | None) -> int:
        count = broker_count + 1 if broker_count is not None else (2 if redelivered else 1)
        if key is None:
            return count
        earlier = self._seen.pop(key, None)
        if redelivered and earlier is not None:
            count = max(count, earlier + 1)
        self._seen[key] = count
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return count

    def forget(self, key: str | None) -> None:
        if key is not None:
            self._seen.pop(key, None)
