"""The envelope kombu's virtual transports store: one JSON document per message.

Redis, SQS and the other "virtual" transports have no AMQP frames, so kombu wraps each message
in a JSON object with exactly the keys ``body``, ``content-encoding``, ``content-type``,
``headers`` and ``properties``. The serialized body is base64-encoded (``properties.body_encoding
= "base64"``); ``properties`` also carries ``delivery_info`` (``exchange``, ``routing_key``: a
Celery worker crashes without it), a ``delivery_tag`` and the ``priority``. Reference §1.6.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq_protocol import jsoncodec
from taskq_protocol.errors import DecodeError, MalformedMessage
from taskq_protocol.fields import as_bool, as_mapping, describe, opt_int, opt_str, or_empty
from taskq_protocol.ids import uuid4_text

if TYPE_CHECKING:
    from taskq_protocol.envelope_template import EnvelopeTemplate

__all__ = ["Envelope", "BODY_ENCODING"]

#: The body encoding kombu's virtual channels use by default.
BODY_ENCODING = "base64"


@dataclass(slots=True)
class Envelope:
    """A message as a virtual transport stores it, with the body already base64-decoded.

    ``properties`` holds the AMQP properties (``correlation_id``, ``reply_to``,
    ``delivery_mode``, ``priority``, ...) plus kombu's ``delivery_info``, ``delivery_tag`` and
    ``body_encoding``.
    """

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any] = field(default_factory=dict[str, Any])
    properties: dict[str, Any] = field(default_factory=dict[str, Any])
    #: What :meth:`encode` writes the JSON with, when this envelope is another's but for the
    #: values the template names (a group's members are the first's); set only by whoever
    #: made the envelope, which nobody changes afterwards (one that no longer has the
    #: template's shape is encoded in full). None: encoded in full.
    template: EnvelopeTemplate | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        body: bytes,
        *,
        content_type: str,
        content_encoding: str,
        headers: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        exchange: str = "",
        routing_key: str = "",
        priority: int | None = None,
        delivery_tag: str | None = None,
    ) -> Envelope:
        """An envelope ready to publish, with the keys kombu's ``_inplace_augment_message`` adds.

        ``exchange`` is ``""`` for Celery's default direct routing: it publishes to the
        anonymous exchange with the queue name as routing key (reference §1.1).
        """
        props = dict(properties or {})
        props["delivery_info"] = {"exchange": exchange, "routing_key": routing_key}
        if priority is not None:
            props["priority"] = priority
        else:
            props.setdefault("priority", 0)
        props["body_encoding"] = BODY_ENCODING
        props["delivery_tag"] = delivery_tag or uuid4_text()
        return cls(
            body=body,
            content_type=content_type,
            content_encoding=content_encoding,
            headers=dict(headers or {}),
            properties=props,
        )

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | str) -> Envelope:
        """Read an envelope written by kombu, Celery or taskq.

        Raises :class:`~taskq_protocol.errors.DecodeError` for bytes that are not JSON or a body
        that is not valid base64, and :class:`~taskq_protocol.errors.MalformedMessage` for a
        document missing a required key.
        """
        raw = as_mapping(jsoncodec.loads(data), "envelope")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Envelope:
        """Read an envelope already parsed from JSON (the memory transport stores dicts)."""
        if "body" not in raw:
            raise MalformedMessage("envelope.body", "missing")
        properties = as_mapping(or_empty(raw.get("properties"), {}), "envelope", "properties")
        headers = as_mapping(or_empty(raw.get("headers"), {}), "envelope", "headers")
        delivery_info = properties.get("delivery_info")
        if delivery_info is not None:
            as_mapping(delivery_info, "envelope.properties", "delivery_info")
        opt_int(properties.get("priority"), "envelope.properties", "priority")
        encoding = opt_str(properties.get("body_encoding"), "envelope.properties", "body_encoding")
        return cls(
            body=_decode_body(raw["body"], encoding),
            content_type=opt_str(raw.get("content-type"), "envelope", "content-type") or "",
            content_encoding=opt_str(raw.get("content-encoding"), "envelope", "content-encoding")
            or "",
            headers=headers,
            properties=properties,
        )

    # -- writing ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document, the body base64-encoded per ``properties.body_encoding``."""
        encoding = self.properties.get("body_encoding")
        if encoding == BODY_ENCODING:
            body: str = binascii.b2a_base64(self.body, newline=False).decode("ascii")
        elif encoding is None or str(encoding).lower() == "utf-8":  # kombu's plain text form
            try:
                body = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedMessage(
                    "envelope.body", "binary body needs properties.body_encoding = 'base64'"
                ) from None
        else:
            raise MalformedMessage(
                "envelope.properties.body_encoding", f"unsupported encoding {encoding!r}"
            )
        return {
            "body": body,
            "content-encoding": self.content_encoding,
            "content-type": self.content_type,
            "headers": self.headers,
            "properties": self.properties,
        }

    def encode(self) -> bytes:
        """The envelope as the UTF-8 JSON bytes a virtual transport stores.

        The same bytes as ``jsoncodec.dumps(self.to_dict())``, written without turning the
        base64 body into text and scanning it again as a JSON string: base64 needs no escapes.
        """
        template = self.template
        if template is not None and (written := template.write(self)) is not None:
            return written
        if self.properties.get("body_encoding") != BODY_ENCODING:
            return jsoncodec.dumps(self.to_dict())
        # '{"headers":{...},"properties":{...}}' written in one call, its braces dropped.
        rest = jsoncodec.dumps({"headers": self.headers, "properties": self.properties})
        return b"".join((
            b'{"body":"',
            binascii.b2a_base64(self.body, newline=False),
            b'","content-encoding":',
            _json_text(self.content_encoding),
            b',"content-type":',
            _json_text(self.content_type),
            b",",
            rest[1:],
        ))  # fmt: skip

    # -- kombu's bookkeeping fields -----------------------------------------------------------

    @property
    def delivery_tag(self) -> str | None:
        tag = self.properties.get("delivery_tag")
        return None if tag is None else str(tag)

    @property
    def delivery_info(self) -> dict[str, Any]:
        info = self.properties.get("delivery_info")
        return as_mapping(info, "envelope.properties", "delivery_info") if info else {}

    @property
    def exchange(self) -> str:
        return str(self.delivery_info.get("exchange") or "")

    @property
    def routing_key(self) -> str:
        return str(self.delivery_info.get("routing_key") or "")

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        return value if isinstance(value, int) else 0

    @property
    def redelivered(self) -> bool:
        """Set by kombu when it restores an unacknowledged message to its queue."""
        flag = self.headers.get("redelivered", self.delivery_info.get("redelivered", False))
        return as_bool(flag, "envelope.headers.redelivered")


# The few content types and encodings there are, as JSON strings.
_JSON_TEXTS: dict[str, bytes] = {}


def _json_text(text: str) -> bytes:
    written = _JSON_TEXTS.get(text)
    if written is None:
        written = jsoncodec.dumps(text)
        if len(_JSON_TEXTS) < 64:
            _JSON_TEXTS[text] = written
    return written


def _decode_body(body: object, encoding: str | None) -> bytes:
    if encoding == BODY_ENCODING:
        if not isinstance(body, str):
            raise MalformedMessage("envelope.body", f"expected base64 text, got {describe(body)}")
        try:
            return base64.b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise DecodeError("envelope.body", f"invalid base64: {exc}") from None
    if encoding is not None and encoding.lower() != "utf-8":
        raise MalformedMessage(
            "envelope.properties.body_encoding",
            f"unsupported body encoding {encoding!r} (kombu writes 'base64')",
        )
    # No body_encoding (or "utf-8"): kombu passes the body through as text.
    if isinstance(body, str):
        return body.encode("utf-8")
    raise MalformedMessage("envelope.body", f"expected text, got {describe(body)}")
