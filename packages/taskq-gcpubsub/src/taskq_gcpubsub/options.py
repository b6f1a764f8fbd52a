"""``broker_transport_options`` the Pub/Sub transport reads, with kombu's names where it has one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TransportOptions", "MAX_ACK_DEADLINE", "MIN_SUBSCRIPTION_DEADLINE"]

#: Pub/Sub's bounds on ack deadlines: a subscription's default is 10-600 s, a per-message
#: ``modify_ack_deadline`` 0-600 s.
MAX_ACK_DEADLINE = 600
MIN_SUBSCRIPTION_DEADLINE = 10


def _number(options: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    raw = options.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"transport option {key!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"transport option {key!r} must be >= {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class TransportOptions:
    #: kombu's ``queue_name_prefix``: put in front of every queue's subscription id.
    queue_name_prefix: str = "kombu-"
    #: Seconds a fetched message stays invisible (Celery's ``visibility_timeout``; kombu's
    #: ``ack_deadline_seconds`` is read too). Pub/Sub caps it at 600.
    visibility_timeout: float = 240.0
    #: Seconds between pulls while nothing is ready (kombu polls every 0.1 s too).
    polling_interval: float = 0.1
    #: Ack ids per acknowledge / modify_ack_deadline request (kombu's ``ack_modify_batch_size``).
    ack_batch_size: int = 1000
    #: Idle seconds after which Pub/Sub deletes a queue's subscription; 0 (the default) never.
    expiration_seconds: float = 0.0
    #: ``max_delivery_attempts`` of the dead-letter policy taskq puts on queue subscriptions
    #: (5-100; 0: no policy, and then Pub/Sub does not count deliveries).
    max_delivery_attempts: int = 100
    #: Seconds a publish may take before it fails with TransportError.
    publish_timeout: float = 60.0

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> TransportOptions:
        prefix = options.get("queue_name_prefix", "kombu-")
        if not isinstance(prefix, str):
            raise ValueError(f"transport option 'queue_name_prefix' must be a string: {prefix!r}")
        if "visibility_timeout" in options:
            visibility = _number(options, "visibility_timeout", 240.0, minimum=0.001)
        else:
            visibility = _number(options, "ack_deadline_seconds", 240.0, minimum=0.001)
        attempts = int(_number(options, "max_delivery_attempts", 100, minimum=0))
        if attempts and not 5 <= attempts <= 100:
            raise ValueError(f"max_delivery_attempts must be 0 or 5-100, got {attempts}")
        return cls(
            queue_name_prefix=prefix,
            visibility_timeout=min(visibility, MAX_ACK_DEADLINE),
            polling_interval=_number(options, "polling_interval", 0.1, minimum=0.001),
            ack_batch_size=int(_number(options, "ack_modify_batch_size", 1000, minimum=1)),
            expiration_seconds=_number(options, "expiration_seconds", 0.0, minimum=0),
            max_delivery_attempts=attempts,
            publish_timeout=_number(options, "publish_timeout", 60.0, minimum=0.001),
        )

    @property
    def ack_deadline(self) -> int:
        """The per-message deadline (whole seconds, 1-600) a fetch sets."""
        return max(1, min(MAX_ACK_DEADLINE, math.ceil(self.visibility_timeout)))

    @property
    def subscription_deadline(self) -> int:
        """The subscription's default deadline: the visibility timeout within 10-600 s."""
        return max(MIN_SUBSCRIPTION_DEADLINE, self.ack_deadline)
