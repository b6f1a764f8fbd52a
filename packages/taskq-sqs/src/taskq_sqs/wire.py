"""SQS messages as kombu's SQS transport writes and reads them.

The body is kombu's JSON envelope (:class:`taskq_protocol.Envelope`, the task body inside it
base64-encoded once more) and then base64-encoded as a whole, kombu's default
(``sqs_base64_encoding``). kombu reads bodies that are not base64 too, and so does
:func:`decode_body`.

Everything taskq needs beside the body travels as SQS message attributes, which kombu does
not ask for and Celery never sees: ``taskq-eta`` (when a delayed message is due; it may
surface earlier, see :mod:`taskq_sqs.transport`) and ``taskq-dead-letter-reason``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import uuid
from typing import Any

from taskq_protocol import Envelope

__all__ = [
    "ETA_ATTRIBUTE",
    "REASON_ATTRIBUTE",
    "encode_body",
    "decode_body",
    "send_entry",
    "eta_of",
]

ETA_ATTRIBUTE = "taskq-eta"
REASON_ATTRIBUTE = "taskq-dead-letter-reason"
#: SQS caps an attribute value (with the whole message) at the message size; a reason is
#: for people, so a short one is enough.
_MAX_REASON = 1024
#: The group of a FIFO message that names none (kombu's choice).
DEFAULT_GROUP = "default"


def encode_body(envelope: Envelope, *, base64_wrap: bool = True) -> str:
    text = envelope.encode()
    if not base64_wrap:
        return text.decode("utf-8")
    return base64.b64encode(text).decode("ascii")


def decode_body(body: str) -> Envelope:
    """The envelope in an SQS body, base64-wrapped (kombu's default) or plain JSON."""
    raw = body.encode("utf-8")
    stripped = raw.strip()
    if not stripped.startswith(b"{"):
        # Not base64: the JSON reader below says what is wrong with it.
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.b64decode(stripped, validate=True)
    return Envelope.decode(raw)


def send_entry(
    envelope: Envelope,
    *,
    fifo: bool,
    delay: float,
    eta: float | None,
    base64_wrap: bool = True,
    reason: str | None = None,
    republished: bool = False,
) -> dict[str, Any]:
    """SendMessage's arguments (without QueueUrl) for ``envelope``.

    ``delay`` (seconds, already capped at SQS's limit) becomes DelaySeconds, rounded up so
    the message never surfaces before ``eta``; FIFO queues take no per-message delay, so for
    them the transport keeps an early message hidden instead (see the transport).
    Celery's ``MessageGroupId``/``MessageDeduplicationId`` properties are honoured as kombu
    does: a FIFO message without them goes to group ``default`` with a random dedup id.
    A ``republished`` message (dead-lettered) gets a fresh dedup id, or SQS would drop it as
    a copy of the original within its five-minute deduplication window.
    """
    entry: dict[str, Any] = {"MessageBody": encode_body(envelope, base64_wrap=base64_wrap)}
    props = envelope.properties
    group = props.get("MessageGroupId")
    if group is not None:
        entry["MessageGroupId"] = str(group)
    if fifo:
        entry.setdefault("MessageGroupId", DEFAULT_GROUP)
        dedup = props.get("MessageDeduplicationId")
        fresh = dedup is None or republished
        entry["MessageDeduplicationId"] = uuid.uuid4().hex if fresh else str(dedup)
    elif delay > 0:
        entry["DelaySeconds"] = math.ceil(delay)
    attributes: dict[str, Any] = {}
    if eta is not None:
        attributes[ETA_ATTRIBUTE] = {"DataType": "Number", "StringValue": repr(float(eta))}
    if reason is not None:
        attributes[REASON_ATTRIBUTE] = {
            "DataType": "String",
            "StringValue": reason[:_MAX_REASON] or "(no reason given)",
        }
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry


def eta_of(message: dict[str, Any]) -> float | None:
    """The ``taskq-eta`` a received SQS message carries, if any."""
    attributes: Any = message.get("MessageAttributes") or {}
    value: Any = attributes.get(ETA_ATTRIBUTE)
    if not value:
        return None
    try:
        return float(value["StringValue"])
    except (KeyError, TypeError, ValueError):
        return None
