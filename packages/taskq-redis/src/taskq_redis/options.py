"""Typed readers for option mappings (``broker_transport_options`` and friends).

Celery users pass many options meant for other brokers or other kombu versions, so an unknown
key is ignored; a known key with a value of the wrong type fails at once with
:class:`~taskq.exceptions.ImproperlyConfigured`, naming the setting, the key and what it should
be. ``None`` counts as absent, as it does in kombu. Values read from a URL's query string arrive
as text and are converted by the same readers, so ``?socket_timeout=5`` and
``{"socket_timeout": 5}`` mean the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import taskq.options
from taskq.exceptions import ImproperlyConfigured

__all__ = [
    "read_bool",
    "read_int",
    "read_mapping",
    "read_seconds",
    "read_str",
]


def read_seconds(
    options: Mapping[str, Any],
    key: str,
    default: float | None,
    setting: str,
    *,
    allow_zero: bool = False,
) -> float | None:
    """``options[key]`` as a finite number of seconds (> 0, or >= 0 with ``allow_zero``)."""
    value = options.get(key)
    if value is None:
        return default
    number = _as_number(value)
    if number is None or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ImproperlyConfigured(
            setting, f"{key} must be a number of seconds {bound}, got {value!r}"
        )
    return number


def read_int(
    options: Mapping[str, Any], key: str, default: int, setting: str, *, minimum: int = 0
) -> int:
    """``options[key]`` as a whole number >= ``minimum``."""
    value = options.get(key)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    if number is None or number < minimum:
        raise ImproperlyConfigured(
            setting, f"{key} must be a whole number >= {minimum}, got {value!r}"
        )
    return number


def read_bool(options: Mapping[str, Any], key: str, default: bool, setting: str) -> bool:
    """``options[key]`` as a boolean, spelled as :func:`taskq.options.read_bool` takes it."""
    value = options.get(key)
    if value is None:
        return default
    return taskq.options.read_bool(value, setting=setting, name=key)


def read_str(options: Mapping[str, Any], key: str, default: str | None, setting: str) -> str | None:
    """``options[key]`` as text."""
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ImproperlyConfigured(setting, f"{key} must be a string, got {value!r}")
    return value


def read_mapping(options: Mapping[str, Any], key: str, setting: str) -> dict[str, Any] | None:
    """``options[key]`` as a mapping with string keys (a copy), or None when absent."""
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(setting, f"{key} must be a mapping, got {value!r}")
    copied: dict[str, Any] = {}
    for name, item in value.items():  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(name, str):
            raise ImproperlyConfigured(setting, f"{key} must have string keys, got {name!r}")
        copied[name] = item
    return copied


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
