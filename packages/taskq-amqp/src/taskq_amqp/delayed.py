"""Celery's native delayed delivery on RabbitMQ (Celery 5.5+, kombu 5.5+), as facts.

A delayed message is published to the topic exchange ``celery_delayed_27`` with a routing
key of 28 binary digits (the delay in whole seconds, most significant first) followed by the
destination's routing key. Level ``n`` (27 down to 0) is an exchange and a queue of the same
name; the queue holds messages whose bit ``n`` is 1 for ``2**n`` seconds (``x-message-ttl``)
and then dead-letters them to level ``n - 1``'s exchange; the exchange passes messages whose
bit ``n`` is 0 straight on to level ``n - 1``. Level 0 dead-letters into the topic exchange
``celery_delayed_delivery``, where destination queues are bound with ``#.<routing key>``.

So a message waits in the broker, never in a worker, however long its countdown: no
consumer holds it, and RabbitMQ's ``consumer_timeout`` cannot fire for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BITS",
    "DELIVERY_EXCHANGE",
    "ENTRY_EXCHANGE",
    "Binding",
    "LevelQueue",
    "level_name",
    "delay_seconds",
    "delayed_routing_key",
    "level_queues",
    "exchange_bindings",
    "destination_pattern",
]

BITS = 28
ENTRY_EXCHANGE = "celery_delayed_27"
DELIVERY_EXCHANGE = "celery_delayed_delivery"
#: The longest delay the levels can hold (about 8.5 years).
MAX_DELAY = (1 << BITS) - 1


def level_name(level: int) -> str:
    return f"celery_delayed_{level}"


def delay_seconds(eta: float, now: float) -> int:
    """Whole seconds to wait, rounded up so a message never arrives before its eta
    (Celery truncates; a taskq worker would then hold it the remaining fraction)."""
    return min(max(math.ceil(eta - now), 0), MAX_DELAY)


def delayed_routing_key(seconds: int, routing_key: str) -> str:
    return ".".join(format(seconds, f"0{BITS}b")) + "." + routing_key


def destination_pattern(routing_key: str) -> str:
    """The binding from ``celery_delayed_delivery`` to a destination (kombu's rule)."""
    return routing_key if routing_key.startswith("#") else f"#.{routing_key}"


@dataclass(frozen=True, slots=True)
class LevelQueue:
    name: str
    arguments: dict[str, Any]
    #: The pattern binding the queue to its own level's exchange (bit set).
    pattern: str


@dataclass(frozen=True, slots=True)
class Binding:
    """An exchange-to-exchange binding: ``source`` passes ``pattern`` on to ``destination``."""

    destination: str
    source: str
    pattern: str


def level_queues(queue_type: str) -> Iterator[LevelQueue]:
    """The 28 level queues, with exactly the arguments Celery's worker declares them with
    (a mismatch makes RabbitMQ refuse the second declaration)."""
    pattern = "1.#"
    for level in range(BITS - 1, -1, -1):
        arguments: dict[str, Any] = {
            "x-queue-type": queue_type,
            "x-overflow": "reject-publish",
            "x-message-ttl": (2**level) * 1000,
            "x-dead-letter-exchange": level_name(level - 1) if level else DELIVERY_EXCHANGE,
        }
        if queue_type == "quorum":
            arguments["x-dead-letter-strategy"] = "at-least-once"
        yield LevelQueue(level_name(level), arguments, pattern)
        pattern = "*." + pattern


def exchange_bindings() -> Iterator[Binding]:
    """Bit 0 at level ``n`` skips the queue: the exchange passes on to level ``n - 1``;
    level 0 passes everything to the delivery exchange."""
    pattern = "0.#"
    for level in range(BITS - 1, 0, -1):
        yield Binding(level_name(level - 1), level_name(level), pattern)
        pattern = "*." + pattern
    yield Binding(DELIVERY_EXCHANGE, level_name(0), pattern)
