"""Argument checks the built-in transports share, so bad calls fail the same way in both.

A wrong argument is a bug in the caller, not a broker failure: it raises ``ValueError`` (never
``TransportError``, which tells the caller to retry) with a message that says what was wrong.
The checks take ``object`` because they exist for callers that ignored the type hints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "check_queue",
    "check_queues",
    "check_limit",
    "check_timeout",
    "visible_at",
    "check_seconds",
]


def check_queue(queue: object, what: str = "a queue") -> str:
    """``queue`` itself, if it is a usable name (``what`` says whose, for the message)."""
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"{what} name must be a non-empty string, got {queue!r}")
    return queue


def check_queues(queues: Sequence[object]) -> list[str]:
    """The queues in order of preference, each once."""
    if isinstance(queues, str):
        raise ValueError(f"queues must be a sequence of names, not the string {queues!r}")
    ordered = list(dict.fromkeys(check_queue(queue) for queue in queues))
    if not ordered:
        raise ValueError("fetch needs at least one queue")
    return ordered


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number >= 1, got {limit!r}")
    return limit


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def visible_at(eta: object, now: float) -> float:
    """When a message published ``now`` with ``eta`` becomes visible (a past ETA: at once)."""
    if eta is None:
        return now
    when = _number(eta)
    if when is None:
        raise ValueError(f"eta must be a Unix time (a finite number) or None, got {eta!r}")
    return max(now, when)


def check_seconds(seconds: object) -> float:
    value = _number(seconds)
    if value is None or value <= 0:
        raise ValueError(f"seconds must be a positive finite number, got {seconds!r}")
    return value


def check_timeout(timeout: object) -> float:
    """A fetch's wait: a finite number of seconds, 0 meaning do not wait."""
    value = _number(timeout)
    if value is None or value < 0:
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    return value
