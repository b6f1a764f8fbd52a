"""Task states, their groupings and their precedence, as Celery defines them.

Any id a result store does not know reads as ``PENDING``. ``RECEIVED`` and ``REJECTED`` travel
only as events. A custom state (any other string, from ``update_state``) ranks between
``FAILURE`` and ``REVOKED`` when states are merged.
"""

from __future__ import annotations

__all__ = [
    "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "REVOKED", "REJECTED", "RETRY",
    "IGNORED", "ALL_STATES", "READY_STATES", "UNREADY_STATES", "EXCEPTION_STATES",
    "PROPAGATE_STATES", "precedence", "newer_wins",
]  # fmt: skip

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
RETRY = "RETRY"
IGNORED = "IGNORED"

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, REVOKED, REJECTED, RETRY})
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})

# Highest first; None stands for every state not listed (custom states).
_PRECEDENCE: tuple[str | None, ...] = (
    SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING,
)  # fmt: skip
_RANK = {state: rank for rank, state in enumerate(_PRECEDENCE)}
_CUSTOM_RANK = _RANK[None]


def precedence(state: str) -> int:
    """Lower is stronger: ``precedence(SUCCESS) < precedence(STARTED)``."""
    return _RANK.get(state, _CUSTOM_RANK)


def newer_wins(current: str, incoming: str) -> bool:
    """Whether ``incoming`` may replace ``current`` when two updates race.

    A state never goes back: a late ``STARTED`` must not hide a stored ``SUCCESS``.
    """
    return precedence(incoming) <= precedence(current)
