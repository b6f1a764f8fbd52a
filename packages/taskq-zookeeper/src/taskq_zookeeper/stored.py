"""A message as it is stored in a znode: kombu's JSON envelope, plus taskq's delivery count.

The count rides in the envelope's properties under :data:`DELIVERIES_KEY` (kombu ignores
properties it does not know) and is taken out again before the envelope is handed over, so
what a consumer fetches is what was published. Rewriting the entry on each claim also bumps
the znode's version, which is what makes a delivery's settle fail once another consumer has
claimed the message again.
"""

from __future__ import annotations

from typing import Any

from taskq_protocol import Envelope, jsoncodec
from taskq_protocol.fields import as_mapping

__all__ = ["DELIVERIES_KEY", "Stored", "encode", "read"]

DELIVERIES_KEY = "x-taskq-deliveries"


class Stored:
    """A stored message read back: its envelope and how often it was handed out so far."""

    __slots__ = ("deliveries", "envelope", "raw")

    def __init__(self, raw: dict[str, Any], envelope: Envelope, deliveries: int) -> None:
        self.raw = raw
        self.envelope = envelope
        self.deliveries = deliveries

    def claimed(self) -> bytes:
        """The bytes to store when this message is handed out once more."""
        properties = dict(self.raw.get("properties") or {})
        properties[DELIVERIES_KEY] = self.deliveries + 1
        return jsoncodec.dumps({**self.raw, "properties": properties})


def encode(envelope: Envelope) -> bytes:
    return envelope.encode()


def read(data: bytes) -> Stored:
    """Raises taskq_protocol's ProtocolError for bytes that are no envelope."""
    raw = dict(as_mapping(jsoncodec.loads(data), "envelope"))
    properties = dict(as_mapping(raw.get("properties") or {}, "envelope", "properties"))
    count = properties.pop(DELIVERIES_KEY, 0)
    deliveries = count if isinstance(count, int) and not isinstance(count, bool) else 0
    envelope = Envelope.from_dict({**raw, "properties": properties})
    return Stored(raw, envelope, deliveries)
