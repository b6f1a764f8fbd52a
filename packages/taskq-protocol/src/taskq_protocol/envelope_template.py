"""The JSON of many envelopes that differ only in a few values, written from one template.

A group's members are one message over and over, each with its own id, group index, arguments
and delivery tag. Writing each envelope's headers and properties as JSON costs more than
anything else done per member (4.4 µs of the ~20 of a member of a large group, measured on a
2-core VM). :class:`EnvelopeTemplate` writes the first envelope once, with a marker in place
of each value that varies, and cuts it at the markers; an envelope written from it is the
pieces joined with its own values, the very bytes :meth:`Envelope.encode` writes. An envelope
whose ``template`` is set is written so when it is encoded: a transport that does not store
JSON (AMQP) never pays for it.
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii

from taskq_protocol import jsoncodec
from taskq_protocol.envelope import BODY_ENCODING, Envelope

__all__ = ["EnvelopeTemplate"]


class EnvelopeTemplate:
    """Writes envelopes that are ``first`` but for the values of the named header and
    property keys and the body (see the module docstring).

    ``ValueError`` when ``first`` cannot be one: a body not base64-encoded, a named key it
    lacks. :meth:`write` checks what it cheaply can (the same content type and encoding, as
    many headers and properties) and returns None for an envelope that fails it; the rest is
    its caller's promise: an envelope made from ``first``'s headers and properties, copied in
    order, with only the named keys set again.
    """

    __slots__ = ("_content", "_pieces", "_sizes", "_slots")

    def __init__(
        self, first: Envelope, header_keys: Sequence[str], property_keys: Sequence[str]
    ) -> None:
        if first.properties.get("body_encoding") != BODY_ENCODING:
            raise ValueError("only envelopes with a base64 body can be written from a template")
        missing = [key for key in header_keys if key not in first.headers] + [
            key for key in property_keys if key not in first.properties
        ]
        if missing:
            raise ValueError(f"the first envelope lacks {', '.join(missing)}")
        self._content = (first.content_type, first.content_encoding)
        self._sizes = (len(first.headers), len(first.properties))
        # A marker no value holds by chance in place of each varying value.
        token = secrets.token_hex(16)
        slots = [(True, key) for key in header_keys] + [(False, key) for key in property_keys]
        markers = {f"{token}-{index}": slot for index, slot in enumerate(slots)}
        headers, properties = dict(first.headers), dict(first.properties)
        for marker, (in_headers, key) in markers.items():
            (headers if in_headers else properties)[key] = marker
        written = Envelope(
            b"", first.content_type, first.content_encoding, headers, properties
        ).encode()
        # What encode() writes: '{"body":"' + base64 + '",...', with each marker once, quoted.
        head = b'{"body":"'
        if not written.startswith(head + b'"'):
            raise ValueError("unexpected envelope layout")
        found: list[tuple[int, bytes, tuple[bool, str]]] = []
        for marker, slot in markers.items():
            quoted = b'"' + marker.encode("ascii") + b'"'
            at = written.find(quoted)
            if at < 0 or written.find(quoted, at + 1) >= 0:
                raise ValueError("a marker was not written exactly once")
            found.append((at, quoted, slot))
        found.sort()
        pieces, start = [head], len(head)
        for at, quoted, _ in found:
            pieces.append(written[start:at])
            start = at + len(quoted)
        pieces.append(written[start:])
        # Text, joined and encoded once per envelope: JSON written by jsoncodec is ASCII.
        self._pieces = tuple(piece.decode("ascii") for piece in pieces)
        #: The varying values in the order they are written (True: a header's).
        self._slots = tuple(slot for _, _, slot in found)

    def write(self, envelope: Envelope) -> bytes | None:
        """The JSON bytes of ``envelope`` (see the class docstring for what it must be), or
        None if it is not of this template's shape."""
        headers, properties = envelope.headers, envelope.properties
        if (envelope.content_type, envelope.content_encoding) != self._content or (
            len(headers),
            len(properties),
        ) != self._sizes:
            return None
        pieces = self._pieces
        body = binascii.b2a_base64(envelope.body, newline=False).decode("ascii")
        parts = [pieces[0], body, pieces[1]]
        for (in_headers, key), piece in zip(self._slots, pieces[2:], strict=True):
            value = headers[key] if in_headers else properties[key]
            parts += (encode_basestring_ascii(value) if type(value) is str else _json(value), piece)
        return "".join(parts).encode("ascii")


def _json(value: object) -> str:
    """``value`` as ``jsoncodec.dumps`` writes it; None and ints without its overhead."""
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    return jsoncodec.dumps_str(value)
