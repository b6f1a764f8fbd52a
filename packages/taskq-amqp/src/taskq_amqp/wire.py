"""AMQP 0-9-1 frames of the hot paths, encoded here rather than through py-amqp.

py-amqp builds every frame through its generic per-method machinery (format strings, a
``BytesIO`` per table, a socket write per method): for a Celery task message, whose headers
are a table of about twenty entries, that was most of the CPU a ``publish`` cost. Here a
``basic.publish`` (method, content header and body frames) is built in one ``bytes`` with the
table and property encodings py-amqp uses, byte for byte (a test compares them), so the
transport can write many publishes or acknowledgements with one socket write.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

__all__ = [
    "FRAME_METHOD",
    "BASIC_ACK",
    "BASIC_NACK",
    "encode_table",
    "encode_properties",
    "publish_method",
    "content_frames",
    "ack_frames",
    "confirm_of",
    "deliver_of",
    "body_size_of",
    "qos_frame",
    "decode_properties",
]

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_END = b"\xce"
#: Frame type, channel and payload size ahead of every payload; the end octet after it.
FRAME_OVERHEAD = 8

BASIC_CLASS = 60
BASIC_DELIVER = (BASIC_CLASS, 60)
#: The start of a ``basic.qos-ok`` method frame's payload (it has no arguments).
QOS_OK = struct.pack(">HH", BASIC_CLASS, 11)
BASIC_ACK = (BASIC_CLASS, 80)
BASIC_NACK = (BASIC_CLASS, 120)

_frame_start = struct.Struct(">BHI").pack
_method_sig = struct.Struct(">HH").unpack_from
_u32 = struct.Struct(">I").pack
_publish_start = struct.pack(">HHH", BASIC_CLASS, 40, 0)  # basic.publish, reserved ticket
_ack_method = struct.Struct(">HHQB").pack
_qos_method = struct.Struct(">HHIHB").pack
_content_start = struct.Struct(">HHQ").pack
_flags = struct.Struct(">H").pack
_s_int = struct.Struct(">ci").pack
_s_long = struct.Struct(">cq").pack
_s_double = struct.Struct(">cd").pack
_s_decimal = struct.Struct(">cBi").pack
_s_time = struct.Struct(">cQ").pack
_u64 = struct.Struct(">Q").pack
_tag_and_bits = struct.Struct(">QB").unpack_from
_u64_at = struct.Struct(">Q").unpack_from

_INT32_MAX = 2147483647


def _text(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def shortstr(value: str | bytes) -> bytes:
    data = _text(value)
    if len(data) > 255:
        raise ValueError(f"an AMQP short string holds at most 255 bytes: {value!r}")
    return bytes((len(data),)) + data


def _item(value: Any, out: list[bytes]) -> None:
    """Append the encoding of one table or array value (py-amqp's type choices)."""
    kind: type[object] = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is str or kind is bytes:
        data = _text(value)
        out.append(b"S" + _u32(len(data)))
        out.append(data)
    elif value is None:
        out.append(b"V")
    elif kind is bool:
        out.append(b"t\x01" if value else b"t\x00")
    elif kind is int:
        if -_INT32_MAX <= value <= _INT32_MAX:
            out.append(_s_int(b"I", value))
        else:
            out.append(_s_long(b"L", value))
    elif isinstance(value, dict):
        out.append(b"F")
        out.append(encode_table(value))  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(value, (list, tuple)):
        out.append(b"A")
        out.append(_array(value))  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(value, (str, bytes)):  # subclasses
        _item(str(value) if isinstance(value, str) else bytes(value), out)
    elif isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, float):
        out.append(_s_double(b"d", value))
    elif isinstance(value, int):
        _item(int(value), out)
    elif isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        number = 0
        for digit in digits:
            number = number * 10 + digit
        out.append(_s_decimal(b"D", -int(exponent), -number if sign else number))
    elif isinstance(value, datetime):
        out.append(_s_time(b"T", calendar.timegm(value.utctimetuple())))
    else:
        raise TypeError(f"AMQP tables cannot hold a {type(value).__name__}: {value!r}")


#: Encoded table keys: a task message's headers use the same twenty keys every time.
_KEYS: dict[str, bytes] = {}
_KEYS_MAX = 1024


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A field table with its length prefix."""
    out: list[bytes] = []
    append = out.append
    keys = _KEYS
    for key, value in table.items():
        encoded_key = keys.get(key)
        if encoded_key is None:
            encoded_key = shortstr(key)
            if len(keys) < _KEYS_MAX:
                keys[key] = encoded_key
        append(encoded_key)
        # The common values inline (this runs for every header of every message).
        if value is None:
            append(b"V")
        elif type(value) is str:
            data = value.encode("utf-8", "surrogatepass")
            append(b"S" + _u32(len(data)) + data)
        else:
            _item(value, out)
    data = b"".join(out)
    return _u32(len(data)) + data


def _array(values: Sequence[Any]) -> bytes:
    out: list[bytes] = []
    for value in values:
        _item(value, out)
    data = b"".join(out)
    return _u32(len(data)) + data


def _octet(value: Any) -> bytes:
    return bytes((value,))


#: Basic properties in wire order (flag bit 15 first) with their encoders.
_PROPERTIES: tuple[tuple[str, Callable[[Any], bytes]], ...] = (
    ("content_type", shortstr),
    ("content_encoding", shortstr),
    ("application_headers", encode_table),
    ("delivery_mode", _octet),
    ("priority", _octet),
    ("correlation_id", shortstr),
    ("reply_to", shortstr),
    ("expiration", shortstr),
    ("message_id", shortstr),
    ("timestamp", _u64),
    ("type", shortstr),
    ("user_id", shortstr),
    ("app_id", shortstr),
    ("cluster_id", shortstr),
)
_KNOWN = frozenset(name for name, _ in _PROPERTIES)


def encode_properties(properties: Mapping[str, Any]) -> bytes:
    """Property flags and list of a content header (``application_headers`` among them)."""
    unknown = properties.keys() - _KNOWN
    if unknown:
        raise ValueError(f"not AMQP basic properties: {sorted(unknown)}")
    flags = 0
    out: list[bytes] = []
    bit = 1 << 15
    for name, encode in _PROPERTIES:
        value = properties.get(name)
        if value is not None:
            flags |= bit
            out.append(encode(value))
        bit >>= 1
    return _flags(flags) + b"".join(out)


def publish_method(exchange: str, routing_key: str, mandatory: bool) -> bytes:
    """The payload of a ``basic.publish`` method frame."""
    return (
        _publish_start
        + shortstr(exchange)
        + shortstr(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )


def content_frames(
    channel: int, frame_max: int, method: bytes, properties: bytes, body: bytes
) -> bytes:
    """A content method's frames in one piece: the method, the content header, and the body
    in frames of at most ``frame_max`` bytes (none for an empty body)."""
    header = _content_start(BASIC_CLASS, 0, len(body)) + properties
    parts = [
        _frame_start(FRAME_METHOD, channel, len(method)),
        method,
        FRAME_END,
        _frame_start(FRAME_HEADER, channel, len(header)),
        header,
        FRAME_END,
    ]
    chunk = frame_max - FRAME_OVERHEAD
    if len(body) <= chunk:
        if body:
            parts += (_frame_start(FRAME_BODY, channel, len(body)), body, FRAME_END)
    else:
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            parts += (_frame_start(FRAME_BODY, channel, len(piece)), piece, FRAME_END)
    return b"".join(parts)


def ack_frames(channel: int, tags: Sequence[int], lowest_unsettled: int | None) -> bytes:
    """``basic.ack`` frames settling ``tags``: one ack with ``multiple`` for every tag below
    ``lowest_unsettled`` (the lowest delivery tag on the channel that stays unsettled, None
    when there is none), which settles them all at once on the broker, and one ack for each
    of the others."""
    below = [tag for tag in tags if lowest_unsettled is None or tag < lowest_unsettled]
    acks = [(tag, False) for tag in tags if lowest_unsettled is not None and tag > lowest_unsettled]
    if below:
        acks.append((max(below), len(below) > 1))
    parts: list[bytes] = []
    for tag, multiple in acks:
        payload = _ack_method(BASIC_CLASS, 80, tag, 1 if multiple else 0)
        parts += (_frame_start(FRAME_METHOD, channel, len(payload)), payload, FRAME_END)
    return b"".join(parts)


def confirm_of(payload: bytes) -> tuple[tuple[int, int], int, bool] | None:
    """``(method, delivery tag, multiple)`` when a method frame's payload is a publisher
    confirm (``basic.ack`` or ``basic.nack``), else None."""
    if len(payload) < 13:
        return None
    sig = _method_sig(payload, 0)
    if sig not in (BASIC_ACK, BASIC_NACK):
        return None
    tag, bits = _tag_and_bits(payload, 4)
    return sig, tag, bool(bits & 1)


def qos_frame(channel: int, prefetch_count: int) -> bytes:
    """A ``basic.qos`` (per consumer, not global) method frame."""
    payload = _qos_method(BASIC_CLASS, 10, 0, prefetch_count, 0)
    return _frame_start(FRAME_METHOD, channel, len(payload)) + payload + FRAME_END


def deliver_of(payload: bytes) -> tuple[str, int, bool, str, str] | None:
    """``(consumer tag, delivery tag, redelivered, exchange, routing key)`` when a method
    frame's payload is a ``basic.deliver``, else None."""
    if _method_sig(payload, 0) != BASIC_DELIVER:
        return None
    end = 5 + payload[4]
    consumer_tag = payload[5:end].decode()
    (tag,) = _u64_at(payload, end)
    redelivered = bool(payload[end + 8] & 1)
    start = end + 10
    end = start + payload[start - 1]
    exchange = payload[start:end].decode()
    start = end + 1
    routing_key = payload[start : start + payload[end]].decode()
    return consumer_tag, tag, redelivered, exchange, routing_key


def body_size_of(header: bytes) -> int:
    """The body size a content header frame announces (its properties follow at 12)."""
    (size,) = _u64_at(header, 4)
    return int(size)


_unpack_u16 = struct.Struct(">H").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_s32 = struct.Struct(">i").unpack_from
_unpack_s64 = struct.Struct(">q").unpack_from
_unpack_scalar: dict[int, tuple[struct.Struct, int]] = {
    ord(kind): (struct.Struct(fmt), struct.calcsize(fmt))
    for kind, fmt in (
        ("s", ">h"),  # RabbitMQ's 16-bit signed int (not a short string)
        ("b", ">b"),
        ("B", ">B"),
        ("U", ">h"),
        ("u", ">H"),
        ("i", ">I"),
        ("f", ">f"),
        ("d", ">d"),
    )
}
_S, _V, _T, _I, _F, _A = (ord(c) for c in "SVtIFA")
_L64 = (ord("l"), ord("L"))


#: Decoded table keys (see ``_KEYS``).
_DECODED_KEYS: dict[bytes, str | bytes] = {}


def _decode_text(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data


def _read(buf: bytes, offset: int) -> tuple[Any, int]:
    """One table or array value at ``offset`` (py-amqp's Python types for each)."""
    kind = buf[offset]
    offset += 1
    if kind == _S:
        (size,) = _unpack_u32(buf, offset)
        offset += 4
        return _decode_text(buf[offset : offset + size]), offset + size
    if kind == _V:
        return None, offset
    if kind == _T:
        return bool(buf[offset]), offset + 1
    if kind == _I:
        return _unpack_s32(buf, offset)[0], offset + 4
    if kind == _F:
        return _read_table(buf, offset)
    if kind == _A:
        (size,) = _unpack_u32(buf, offset)
        offset += 4
        end = offset + size
        values: list[Any] = []
        while offset < end:
            value, offset = _read(buf, offset)
            values.append(value)
        return values, offset
    if kind in _L64:
        return _unpack_s64(buf, offset)[0], offset + 8
    scalar = _unpack_scalar.get(kind)
    if scalar is not None:
        return scalar[0].unpack_from(buf, offset)[0], offset + scalar[1]
    if kind == ord("x"):
        (size,) = _unpack_u32(buf, offset)
        offset += 4
        return buf[offset : offset + size], offset + size
    if kind == ord("D"):
        places = buf[offset]
        (number,) = _unpack_s32(buf, offset + 1)
        return Decimal(number) / Decimal(10**places), offset + 5
    if kind == ord("T"):
        (seconds,) = _u64_at(buf, offset)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)
        return moment, offset + 8
    raise ValueError(f"unknown AMQP field type {chr(kind)!r} at offset {offset - 1}")


def _read_table(buf: bytes, offset: int) -> tuple[dict[Any, Any], int]:
    (size,) = _unpack_u32(buf, offset)
    offset += 4
    end = offset + size
    table: dict[Any, Any] = {}
    keys = _DECODED_KEYS
    while offset < end:
        key_end = offset + 1 + buf[offset]
        raw = buf[offset + 1 : key_end]
        key = keys.get(raw)
        if key is None:
            key = _decode_text(raw)
            if len(keys) < _KEYS_MAX:
                keys[raw] = key
        # The common values inline (this runs for every header of every delivery).
        kind = buf[key_end]
        if kind == _S:
            (size,) = _unpack_u32(buf, key_end + 1)
            offset = key_end + 5 + size
            table[key] = _decode_text(buf[key_end + 5 : offset])
        elif kind == _V:
            table[key] = None
            offset = key_end + 1
        else:
            table[key], offset = _read(buf, key_end)
    return table, offset


def _read_shortstr(buf: bytes, offset: int) -> tuple[Any, int]:
    end = offset + 1 + buf[offset]
    return buf[offset + 1 : end].decode("utf-8", "surrogatepass"), end


def _read_octet(buf: bytes, offset: int) -> tuple[Any, int]:
    return buf[offset], offset + 1


def _read_timestamp(buf: bytes, offset: int) -> tuple[Any, int]:
    return _u64_at(buf, offset)[0], offset + 8


_PROPERTY_READERS: tuple[tuple[str, int, Callable[[bytes, int], tuple[Any, int]]], ...] = tuple(
    (name, 1 << (15 - index), reader)
    for index, (name, reader) in enumerate(
        (
            ("content_type", _read_shortstr),
            ("content_encoding", _read_shortstr),
            ("application_headers", _read_table),
            ("delivery_mode", _read_octet),
            ("priority", _read_octet),
            ("correlation_id", _read_shortstr),
            ("reply_to", _read_shortstr),
            ("expiration", _read_shortstr),
            ("message_id", _read_shortstr),
            ("timestamp", _read_timestamp),
            ("type", _read_shortstr),
            ("user_id", _read_shortstr),
            ("app_id", _read_shortstr),
            ("cluster_id", _read_shortstr),
        )
    )
)


def decode_properties(header: bytes) -> dict[str, Any]:
    """The basic properties of a content header frame's payload, as py-amqp decodes them
    (a test compares the two)."""
    (flags,) = _unpack_u16(header, 12)
    offset = 14
    properties: dict[str, Any] = {}
    for name, bit, reader in _PROPERTY_READERS:
        if flags & bit:
            properties[name], offset = reader(header, offset)
    return properties
