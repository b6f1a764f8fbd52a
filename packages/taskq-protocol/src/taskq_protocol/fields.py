"""Typed readers for the fields of a decoded document.

Messages arrive as untrusted JSON-like data. Each reader checks one field and returns it with
its real type, or raises :class:`~taskq_protocol.errors.MalformedMessage` naming the field and
saying what was expected, so no caller ever meets a bare ``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeGuard, cast

from taskq_protocol.errors import MalformedMessage

__all__ = [
    "as_mapping",
    "as_list",
    "opt_str",
    "req_str",
    "opt_int",
    "opt_number",
    "as_bool",
    "opt_datetime",
    "format_datetime",
    "parse_datetime",
    "describe",
    "or_empty",
    "is_mapping",
    "is_list",
]


def describe(value: object) -> str:
    """A short description of a wrong value for an error message (never its whole repr)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def is_mapping(value: object) -> TypeGuard[Mapping[object, object]]:
    return isinstance(value, Mapping)


def is_list(value: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    return isinstance(value, (list, tuple))


def or_empty(value: object, empty: object) -> object:
    """Celery writes ``null`` for an empty args/kwargs/options/stamps; anything else is checked."""
    return empty if value is None else value


def as_mapping(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedMessage(field, f"expected a mapping, got {describe(value)}")
    mapping = cast("Mapping[object, Any]", value)
    for key in mapping:
        if not isinstance(key, str):
            raise MalformedMessage(field, f"keys must be strings, got {describe(key)}")
    return dict(cast("Mapping[str, Any]", mapping))


def as_list(value: object, field: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(cast("list[Any] | tuple[Any, ...]", value))
    raise MalformedMessage(field, f"expected a list, got {describe(value)}")


def req_str(value: object, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise MalformedMessage(field, f"expected a non-empty string, got {describe(value)}")


def opt_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(field, f"expected a string or null, got {describe(value)}")


def opt_int(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(field, f"expected an integer or null, got {describe(value)}")
    return value


def opt_number(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedMessage(field, f"expected a number or null, got {describe(value)}")
    if not math.isfinite(value):
        raise MalformedMessage(field, f"expected a finite number, got {value!r}")
    return value


def as_bool(value: object, field: str) -> bool:
    # Foreign clients send 0/1 for flags; anything else is a mistake worth naming.
    if isinstance(value, bool):
        return value
    if value is None or value in (0, 1):
        return bool(value)
    raise MalformedMessage(field, f"expected true or false, got {describe(value)}")


def parse_datetime(text: str, field: str) -> datetime:
    """Read an ISO-8601 timestamp as Celery writes it (``datetime.isoformat()``).

    Also takes the ``Z`` suffix other languages' clients write, which Python 3.10's
    ``fromisoformat`` does not.
    """
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        raise MalformedMessage(field, f"expected an ISO-8601 timestamp, got {text!r}") from None


def opt_datetime(value: object, field: str) -> datetime | None:
    """A timestamp field: ISO-8601 text, or null. A ``datetime`` passes through."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value, field)
    raise MalformedMessage(field, f"expected an ISO-8601 string or null, got {describe(value)}")


def format_datetime(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
