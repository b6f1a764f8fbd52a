"""Reading ``broker_transport_options`` and ``result_backend_transport_options``.

The mappings also hold options meant for other brokers (a project that moves from Redis to
SQLite keeps its Redis options), so unknown keys are ignored; a known key with a wrong value
fails at once, naming the setting, the key and what it should be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from taskq.exceptions import ImproperlyConfigured

__all__ = ["BROKER_OPTIONS", "BACKEND_OPTIONS", "seconds_option"]

#: The settings these options come from, for error messages.
BROKER_OPTIONS = "broker_transport_options"
BACKEND_OPTIONS = "result_backend_transport_options"


def seconds_option(options: Mapping[str, Any], key: str, default: float, setting: str) -> float:
    """``options[key]`` as a positive, finite number of seconds, or ``default`` when absent."""
    value = options.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ImproperlyConfigured(
            setting, f"{key} must be a positive number of seconds, got {value!r}"
        )
    return float(value)
