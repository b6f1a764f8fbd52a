"""The message a built-in transport puts on the dead-letter queue.

It is the original envelope, untouched (body, properties, the original ``delivery_info`` that
says where it was headed), plus the :data:`~taskq.contracts.DEAD_LETTER_REASON_HEADER` header,
so an operator reading ``<queue>.dlq`` sees what the message was and why it was refused.
"""

from __future__ import annotations

from taskq.contracts import DEAD_LETTER_REASON_HEADER
from taskq_protocol import Envelope

__all__ = ["dead_lettered"]


def dead_lettered(envelope: Envelope, reason: str) -> Envelope:
    if not isinstance(reason, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"a dead-letter reason must be a string, got {reason!r}")
    return Envelope(
        body=envelope.body,
        content_type=envelope.content_type,
        content_encoding=envelope.content_encoding,
        headers={**envelope.headers, DEAD_LETTER_REASON_HEADER: reason},
        properties=dict(envelope.properties),
    )
