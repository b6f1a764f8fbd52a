"""Typed readers for the fields of a decoded document.

Messages arrive as untrusted JSON-like data. Each reader checks one field and returns it with
its real type, or raises :class:`~taskq_protocol.errors.MalformedMessage` naming the field and
saying what was expected, so no caller ever meets a bare ``KeyError`` or ``TypeError``.
Readers take the parent's path and the key apart, so the dotted name is only built when there
is an error to report, never on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeGuard, cast

from taskq_protocol.errors import MalformedMessage

__all__ = [
    "as_mapping",
    "str_keys",
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
    "unknown_keys",
    "is_mapping",
    "is_list",
]


def _at(field: str, key: str) -> str:
    """The dotted path of a field; built only when an error needs it, never on the hot path."""
    if not key:
        return field
    return f"{field}{key}" if key.startswith("[") else f"{field}.{key}"


def describe(value: object) -> str:
    """A short description of a wrong value for an error message (never its whole repr)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def is_mapping(value: object) -> TypeGuard[Mapping[object, object]]:
    # Exact types first: the ABC check behind isinstance(..., Mapping) is slow for a list.
    kind = type(value)
    return kind is dict or (kind is not list and isinstance(value, Mapping))


def is_list(value: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    return isinstance(value, (list, tuple))


def or_empty(value: object, empty: object) -> object:
    """Celery writes ``null`` for an empty args/kwargs/options/stamps; anything else is checked."""
    return empty if value is None else value


def as_mapping(value: object, field: str, key: str = "") -> dict[str, Any]:
    """A mapping field. A ``dict`` is returned as is (callers that change it copy it first)."""
    if type(value) is dict:
        # The hot path: decoded JSON. Key types are checked only where they matter
        # (``str_keys``): JSON keys are always strings.
        return value  # pyright: ignore[reportUnknownVariableType]  # no cast(): a call per field
    if not isinstance(value, Mapping):
        raise MalformedMessage(_at(field, key), f"expected a mapping, got {describe(value)}")
    checked = str_keys(cast("Mapping[object, Any]", value), _at(field, key))
    return dict(checked)


def str_keys(value: Mapping[Any, Any], field: str) -> Mapping[str, Any]:
    """``value``, after checking that every key is a string (msgpack and pickle allow others)."""
    for name in value:
        if type(name) is not str:
            raise MalformedMessage(field, f"keys must be strings, got {describe(name)}")
    return value


def as_list(value: object, field: str, key: str = "") -> list[Any]:
    """A list field (a tuple becomes a list). A ``list`` is returned as is, like dicts."""
    if type(value) is list:
        return value  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, (list, tuple)):
        return list(value)  # pyright: ignore[reportUnknownArgumentType]
    raise MalformedMessage(_at(field, key), f"expected a list, got {describe(value)}")


def req_str(value: object, field: str, key: str = "") -> str:
    if isinstance(value, str) and value:
        return value
    raise MalformedMessage(_at(field, key), f"expected a non-empty string, got {describe(value)}")


def opt_str(value: object, field: str, key: str = "") -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(_at(field, key), f"expected a string or null, got {describe(value)}")


def opt_int(value: object, field: str, key: str = "") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(
            _at(field, key), f"expected an integer or null, got {describe(value)}"
        )
    return value


def opt_number(value: object, field: str, key: str = "") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedMessage(_at(field, key), f"expected a number or null, got {describe(value)}")
    if not math.isfinite(value):
        raise MalformedMessage(_at(field, key), f"expected a finite number, got {value!r}")
    return value


def as_bool(value: object, field: str, key: str = "") -> bool:
    # Foreign clients send 0/1 for flags; anything else is a mistake worth naming.
    if isinstance(value, bool):
        return value
    if value is None or value in (0, 1):
        return bool(value)
    raise MalformedMessage(_at(field, key), f"expected true or false, got {describe(value)}")


def parse_datetime(text: str, field: str, key: str = "") -> datetime:
    """Read an ISO-8601 timestamp as Celery writes it (``datetime.isoformat()``).

    Also takes the ``Z`` suffix other languages' clients write, which Python 3.10's
    ``fromisoformat`` does not.
    """
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        raise MalformedMessage(
            _at(field, key), f"expected an ISO-8601 timestamp, got {text!r}"
        ) from None


def opt_datetime(value: object, field: str, key: str = "") -> datetime | None:
    """A timestamp field: ISO-8601 text, or null. A ``datetime`` passes through."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value, field, key)
    raise MalformedMessage(
        _at(field, key), f"expected an ISO-8601 string or null, got {describe(value)}"
    )


def unknown_keys(raw: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The keys of ``raw`` a model does not name, kept verbatim (usually none: a fast check)."""
    if raw.keys() <= known:
        return {}
    return {k: v for k, v in raw.items() if k not in known}


def format_datetime(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
