# pyright: strict
"""Converters for argparse's ``type=``: each turns one option's text into a value or explains
what is wrong with it, so argparse reports ``argument -a/--args: <why>`` and exits with 2."""

from __future__ import annotations

import json
import math
from argparse import ArgumentTypeError
from datetime import datetime, timezone
from typing import Any, cast

__all__ = [
    "json_array",
    "json_object",
    "names",
    "positive_int",
    "non_negative_int",
    "seconds",
    "timestamp",
    "timestamp_or_seconds",
    "loglevel",
    "LOG_LEVELS",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def json_array(text: str) -> list[Any]:
    """``-a '[1, "x"]'``: positional arguments."""
    value = _json(text)
    if not isinstance(value, list):
        raise ArgumentTypeError(f"expected a JSON array such as '[1, 2]', got {text!r}")
    return cast("list[Any]", value)


def json_object(text: str) -> dict[str, Any]:
    """``-k '{"x": 1}'``: keyword arguments."""
    value = _json(text)
    if not isinstance(value, dict):
        raise ArgumentTypeError(f"expected a JSON object such as '{{\"x\": 1}}', got {text!r}")
    return cast("dict[str, Any]", value)


def names(text: str) -> list[str]:
    """``-Q a,b``: comma-separated names, blanks dropped, order kept, each name once."""
    found = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not found:
        raise ArgumentTypeError(f"expected comma-separated names such as 'a,b', got {text!r}")
    return found


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def seconds(text: str) -> float:
    """A duration: a positive number of seconds (``1.5``)."""
    value = _float(text)
    if value is None or value <= 0:
        raise ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def timestamp(text: str) -> datetime:
    """An ISO 8601 time (``2030-01-01T12:00:00+01:00``); without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentTypeError(
            f"expected an ISO 8601 time such as '2030-01-01T12:00:00+00:00', got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def timestamp_or_seconds(text: str) -> datetime | float:
    """``--expires``: seconds from now (``60``) or an ISO 8601 time, as Celery accepts it."""
    value = _float(text)
    if value is not None:
        if value <= 0:
            raise ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
        return value
    try:
        return timestamp(text)
    except ArgumentTypeError:
        raise ArgumentTypeError(
            f"expected seconds from now or an ISO 8601 time, got {text!r}"
        ) from None


def loglevel(text: str) -> str:
    """``-l info``: a level name in any case; ``WARN`` is accepted for ``WARNING``."""
    level = text.strip().upper()
    level = "WARNING" if level == "WARN" else level
    if level not in LOG_LEVELS:
        raise ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level
