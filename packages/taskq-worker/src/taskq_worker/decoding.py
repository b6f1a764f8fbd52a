"""From a delivery to a task message, or to the reason it cannot be one.

Decompress per the ``compression`` header, deserialize if ``accept_content`` allows the
content type (a signed message is verified here, by the ``auth`` serializer), then read the
protocol. Whatever goes wrong, and poison messages can make anything go wrong, ends in
:class:`Undeliverable` with a one-line reason for the dead-letter header and the log: a bad
message is refused, never fatal.
"""

from __future__ import annotations

from collections.abc import Collection

from taskq.contracts import Delivery
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import TaskMessage
from taskq_serializers import SerializationError, decompress, registry

__all__ = ["Undeliverable", "Decoder"]


class Undeliverable(Exception):
    """A delivery that cannot become a task message; ``str()`` is the reason."""


class Decoder:
    """Decodes deliveries for one worker; ``accept_content`` is resolved once, here."""

    __slots__ = ("accept",)

    def __init__(self, accept_content: Collection[str]) -> None:
        try:
            self.accept = registry.accept_content_types(accept_content)
        except (SerializationError, TypeError) as exc:
            raise ImproperlyConfigured("accept_content", str(exc)) from exc

    def decode(self, delivery: Delivery) -> TaskMessage:
        envelope = delivery.envelope
        try:
            body = envelope.body
            compression = envelope.headers.get("compression")
            if compression:
                body = decompress(body, str(compression))
            payload = registry.loads(
                body, envelope.content_type, envelope.content_encoding, accept=self.accept
            )
            return TaskMessage.decode(envelope.headers, envelope.properties, payload)
        except Exception as exc:  # anything a malformed message triggers: refused, not fatal
            raise Undeliverable(f"cannot decode: {type(exc).__name__}: {exc}") from exc
