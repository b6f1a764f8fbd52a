"""An :class:`~taskq_protocol.Envelope` as AMQP carries it, and back, byte for byte.

AMQP has native slots for the content type and encoding, the headers and the basic
properties Celery uses (``correlation_id``, ``reply_to``, ``priority``, ``delivery_mode``,
``expiration``...). What an envelope holds beyond those (kombu's virtual-transport keys
``delivery_info``, ``delivery_tag``, ``body_encoding``) rides in one private header, so a
taskq consumer gets back exactly what was published; kombu and Celery ignore the header.
Headers the broker adds on its way (dead-lettering's ``x-death``, quorum queues'
``x-delivery-count``) are taken off again: they describe the trip, not the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from taskq_protocol import Envelope

__all__ = [
    "PRIVATE_HEADER",
    "to_wire",
    "from_wire",
    "delivery_count_header",
    "strip_delay_prefix",
]

#: The header carrying envelope properties AMQP has no slot for.
PRIVATE_HEADER = "x-taskq-properties"

#: Basic properties py-amqp sends natively (``content_type``/``content_encoding`` and the
#: headers are the envelope's own fields).
NATIVE_PROPERTIES = frozenset(
    {
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "type",
        "user_id",
        "app_id",
        "timestamp",
    }
)

#: Headers RabbitMQ adds while routing (dead-lettering, quorum redelivery).
BROKER_HEADERS = frozenset({"x-death", "x-delivery-count"})
BROKER_HEADER_PREFIXES = ("x-first-death-", "x-last-death-")

#: kombu's native delayed delivery prefixes a routing key with 28 binary digits.
_DELAY_PREFIX = re.compile(r"^(?:[01]\.){28}")


def strip_delay_prefix(routing_key: str) -> str:
    return _DELAY_PREFIX.sub("", routing_key, count=1)


def to_wire(envelope: Envelope) -> dict[str, Any]:
    """The basic properties to publish ``envelope`` with, its headers (and the private
    header) as ``application_headers``."""
    properties: dict[str, Any] = {
        "content_type": envelope.content_type,
        "content_encoding": envelope.content_encoding,
    }
    private: dict[str, Any] = {}
    for key, value in envelope.properties.items():
        if key in NATIVE_PROPERTIES and value is not None:
            properties[key] = value
        else:
            private[key] = value
    if private:
        properties["application_headers"] = {**envelope.headers, PRIVATE_HEADER: private}
    else:
        properties["application_headers"] = envelope.headers
    return properties


def delivery_count_header(headers: Mapping[str, Any]) -> int | None:
    """Quorum queues count earlier deliveries in ``x-delivery-count`` (absent the first time)."""
    value = headers.get("x-delivery-count")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def from_wire(
    body: bytes,
    properties: Mapping[str, Any],
    headers: Mapping[str, Any],
    *,
    exchange: str,
    routing_key: str,
) -> Envelope:
    """The envelope a received message carries (``properties`` without headers)."""
    clean: dict[str, Any] = {}
    private: Any = None
    for key, value in headers.items():
        if key == PRIVATE_HEADER:
            private = value
        elif key in BROKER_HEADERS or key.startswith(BROKER_HEADER_PREFIXES):
            continue
        else:
            clean[key] = value
    envelope_properties: dict[str, Any] = {
        key: value for key, value in properties.items() if key in NATIVE_PROPERTIES
    }
    if isinstance(private, dict):
        envelope_properties.update(private)  # pyright: ignore[reportUnknownArgumentType]
    else:
        # Published by kombu or Celery: delivery_info as kombu's AMQP transport reports it.
        envelope_properties["delivery_info"] = {
            "exchange": "" if exchange.startswith("celery_delayed_") else exchange,
            "routing_key": strip_delay_prefix(routing_key),
        }
    content_type = properties.get("content_type")
    content_encoding = properties.get("content_encoding")
    return Envelope(
        body=body,
        content_type=content_type if isinstance(content_type, str) else "",
        content_encoding=content_encoding if isinstance(content_encoding, str) else "",
        headers=clean,
        properties=envelope_properties,
    )
