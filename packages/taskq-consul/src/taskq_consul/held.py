"""What a consumer keeps while it holds a delivery, and the flags on a ready message.

A fetched message moves out of its queue into ``_taskq/unacked/...`` (so kombu consumers, which
do not look at locks, no longer see it), locked by the consumer's session: if the consumer
dies, Consul releases the lock when the session's TTL passes and any consumer gives the message
back. The held key's value says what to give back and when the visibility timeout ends.

A ready message's ``Flags`` (an opaque number Consul stores beside each value, which kombu
leaves 0) carry how often it was delivered before, in the low 32 bits, and, while a consumer
is moving it, the second it started, in the high bits: a consumer that sees a fresh claim
stamp leaves the message alone; one older than :data:`CLAIM_STALE` belongs to a consumer that
died mid-move, and the message is free again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, cast

__all__ = [
    "CLAIM_STALE",
    "SETTLE_GRACE",
    "HeldMessage",
    "pack_flags",
    "unpack_flags",
    "mark_redelivered",
]

#: Seconds after which a half-finished move (claim) of a ready message is abandoned.
CLAIM_STALE = 60.0
#: Seconds a held message stays reserved for whoever took it to settle it (reject, give back).
SETTLE_GRACE = 60.0
_LOW = 0xFFFFFFFF


def pack_flags(claimed_at: float, deliveries: int) -> int:
    return (int(claimed_at) << 32) | min(deliveries, _LOW)


def unpack_flags(flags: int) -> tuple[int, int]:
    """``(claim second or 0, deliveries so far)``."""
    return flags >> 32, flags & _LOW


@dataclass(frozen=True, slots=True)
class HeldMessage:
    queue: str
    #: The ready key's last segment, so a give-back returns it to its place in the queue.
    suffix: str
    deliveries: int
    #: Unix time the visibility timeout ends.
    deadline: float
    #: The stored envelope, byte for byte.
    message: bytes
    #: Unix time someone took it to settle or give back (others then leave it alone).
    taken_at: float | None = None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "queue": self.queue,
                "suffix": self.suffix,
                "deliveries": self.deliveries,
                "deadline": self.deadline,
                "taken_at": self.taken_at,
                "message": self.message.decode("utf-8"),
            },
            ensure_ascii=False,
        ).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> HeldMessage:
        raw = cast("dict[str, Any]", json.loads(data))
        taken = raw.get("taken_at")
        return cls(
            queue=str(raw["queue"]),
            suffix=str(raw["suffix"]),
            deliveries=int(raw["deliveries"]),
            deadline=float(raw["deadline"]),
            message=str(raw["message"]).encode("utf-8"),
            taken_at=None if taken is None else float(taken),
        )

    def with_(self, **changes: Any) -> HeldMessage:
        return dataclasses.replace(self, **changes)

    def is_reserved(self, now: float) -> bool:
        return self.taken_at is not None and now - self.taken_at < SETTLE_GRACE


def mark_redelivered(message: bytes) -> bytes:
    """The message with kombu's redelivered flags set, as kombu marks a restored message."""
    try:
        envelope: Any = json.loads(message)
    except ValueError:
        return message
    if not isinstance(envelope, dict):
        return message
    document = cast("dict[str, Any]", envelope)
    headers: Any = document.get("headers")
    if isinstance(headers, dict):
        cast("dict[str, Any]", headers)["redelivered"] = True
    properties: Any = document.get("properties")
    if isinstance(properties, dict):
        info: Any = cast("dict[str, Any]", properties).get("delivery_info")
        if isinstance(info, dict):
            cast("dict[str, Any]", info)["redelivered"] = True
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
