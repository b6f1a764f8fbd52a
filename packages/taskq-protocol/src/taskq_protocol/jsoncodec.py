"""JSON as Celery and kombu write it, including the ``__type__``/``__value__`` markers.

kombu's JSON encoder writes types that JSON lacks as ``{"__type__": T, "__value__": V}``:
``datetime``, ``date``, ``time`` (ISO-8601), ``decimal`` (str), ``uuid`` (``{"hex": ...}``),
``bytes`` (the UTF-8 text) and ``base64`` (bytes that are not UTF-8). These markers are part of the
wire format: a Celery worker decodes them back into Python objects, so taskq must write and read
them the same way. Objects with a ``__json__()`` method are written as what it returns, as kombu
does.

The codec lives in the protocol package because the kombu envelope (the JSON document every
virtual transport stores) is written with it too, and the protocol package has no dependencies.
"""

from __future__ import annotations

import base64
import json
import json.scanner
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from taskq_protocol.errors import DecodeError

__all__ = ["dumps", "dumps_str", "loads", "MARKER_TYPES"]


def _marker(kind: str, value: object) -> dict[str, object]:
    return {"__type__": kind, "__value__": value}


def _encode_bytes(data: bytes) -> dict[str, object]:
    try:
        return _marker("bytes", data.decode("utf-8"))
    except UnicodeDecodeError:
        return _marker("base64", base64.b64encode(data).decode("ascii"))


def _default(obj: object) -> object:
    """Called by :mod:`json` for every object it cannot write by itself."""
    reducer = getattr(obj, "__json__", None)
    if reducer is not None:
        return reducer()
    # datetime before date: a datetime is also a date.
    if isinstance(obj, datetime):
        return _marker("datetime", obj.isoformat())
    if isinstance(obj, date):
        return _marker("date", obj.isoformat())
    if isinstance(obj, time):
        return _marker("time", obj.isoformat())
    if isinstance(obj, Decimal):
        return _marker("decimal", str(obj))
    if isinstance(obj, uuid.UUID):
        return _marker("uuid", {"hex": obj.hex})
    if isinstance(obj, (bytes, bytearray)):
        return _encode_bytes(bytes(obj))
    if isinstance(obj, memoryview):
        return _encode_bytes(obj.tobytes())
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _uuid_from(value: Any) -> uuid.UUID:
    if isinstance(value, dict) and "hex" in value and isinstance(value["hex"], str):
        return uuid.UUID(hex=value["hex"])
    if isinstance(value, str):
        return uuid.UUID(value)
    raise ValueError(f"expected {{'hex': str}}, got {value!r}")


def _date_from(value: Any) -> date:
    return datetime.fromisoformat(value).date()


def _bytes_from(value: Any) -> bytes:
    return value.encode("utf-8")  # type: ignore[no-any-return]


def _base64_from(value: Any) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)


_DECODERS: dict[str, Callable[[Any], object]] = {
    "datetime": datetime.fromisoformat,
    "date": _date_from,
    "time": time.fromisoformat,
    "decimal": Decimal,
    "uuid": _uuid_from,
    "bytes": _bytes_from,
    "base64": _base64_from,
}

#: The marker names this codec reads and writes.
MARKER_TYPES = frozenset(_DECODERS)


def _object_hook(obj: dict[str, Any]) -> object:
    if len(obj) == 2 and "__type__" in obj and "__value__" in obj:
        kind = obj["__type__"]
        decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
        if decoder is None:
            raise DecodeError("__type__", f"unsupported JSON type marker {kind!r}")
        try:
            return decoder(obj["__value__"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise DecodeError("__value__", f"bad value for {kind!r} marker: {exc}") from None
    return obj


def _make_encoder() -> Callable[[object], str]:
    """The C encoder ``json.JSONEncoder(separators=(",", ":"), default=_default)`` uses, called
    directly: ``encode`` and ``iterencode`` add two Python frames and build a new C encoder
    for every document, a measurable share of writing a small message."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(default=_default, separators=(",", ":")).encode
    # No circular-reference table: one table shared by threads would report an object two
    # threads write at once as circular. A circular document still fails, as RecursionError.
    encoder = make(
        None, _default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def encode(obj: object) -> str:
        return "".join(encoder(obj, 0))

    return encode


_encode = _make_encoder()
# The C scanner, called directly: json.loads adds two Python frames and two regex matches per
# document, a measurable share of decoding a small message.
# (typeshed types make_scanner's argument wrongly; it takes the decoder whose settings it uses.)
_scan_plain: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # pyright: ignore[reportArgumentType]
)
_scan_marked: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(object_hook=_object_hook)  # pyright: ignore[reportArgumentType]
)
_WHITESPACE = " \t\n\r"


def dumps_str(obj: object) -> str:
    """Write ``obj`` as compact JSON text with kombu's type markers."""
    try:
        return _encode(obj)
    except ValueError as exc:  # NaN handling, ...
        raise TypeError(str(exc)) from exc
    except RecursionError:
        raise TypeError("cannot write a circular or too deeply nested value as JSON") from None


def dumps(obj: object) -> bytes:
    """Write ``obj`` as compact UTF-8 JSON bytes with kombu's type markers."""
    # ensure_ascii (the default) makes the text pure ASCII, so encoding cannot fail on a lone
    # surrogate and takes CPython's fastest path. (dumps_str's body, not a call: this runs
    # several times per message.)
    try:
        return _encode(obj).encode("ascii")
    except ValueError as exc:
        raise TypeError(str(exc)) from exc
    except RecursionError:
        raise TypeError("cannot write a circular or too deeply nested value as JSON") from None


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Read JSON written by taskq, kombu or Celery, turning type markers back into objects.

    Raises :class:`~taskq_protocol.errors.DecodeError` for anything that is not valid JSON or
    holds a marker that cannot be decoded.
    """
    if isinstance(data, str):
        text = data
    else:
        try:
            text = (data.tobytes() if isinstance(data, memoryview) else data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("body", f"JSON is not valid UTF-8: {exc}") from None
    # Most messages hold no markers; skipping the per-object hook for them is measurably faster.
    scan = _scan_marked if "__type__" in text else _scan_plain
    if text[:1] in _WHITESPACE:
        text = text.lstrip(_WHITESPACE)
    try:
        value, end = scan(text, 0)
    except StopIteration as exc:
        raise DecodeError("body", f"invalid JSON: expecting a value at char {exc.value}") from None
    except json.JSONDecodeError as exc:
        raise DecodeError("body", f"invalid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("body", "JSON is nested too deeply") from None
    if end != len(text) and text[end:].strip(_WHITESPACE):
        raise DecodeError("body", f"invalid JSON: extra data at char {end}")
    return value
