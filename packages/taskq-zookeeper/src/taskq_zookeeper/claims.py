"""The ephemeral claim a consumer holds on a message, and the handle its Delivery carries.

A claim node's data is its deadline (the visibility timeout), as JSON. The claim is ephemeral,
so it also ends with the holder's session: a consumer killed with -9 loses its claims once
ZooKeeper expires the session, and the messages are free again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

__all__ = ["ClaimHandle", "claim_data", "claim_deadline"]


@dataclass(slots=True)
class ClaimHandle:
    """What a :class:`~taskq.contracts.Delivery` of this transport points at."""

    #: The message's znode and the claim's.
    entry: str
    claim: str
    #: The entry's version after this claim rewrote it: any later claim changes it, so a
    #: settle checked against it does nothing once the message went to another consumer.
    version: int
    #: When the claim's visibility timeout passes (Unix time).
    deadline: float


def claim_data(deadline: float) -> bytes:
    return json.dumps({"deadline": deadline}).encode()


def claim_deadline(data: bytes) -> float:
    """The deadline in a claim's data; an unreadable claim counts as expired."""
    try:
        value = json.loads(data)["deadline"]
    except (ValueError, KeyError, TypeError):
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0
