"""What the interop tasks do, shared by the Celery app and the taskq app on RabbitMQ.

Both apps register the same task names, so a message reaches either worker by its queue
alone; each result says which side ran it. Executions are counted in Redis (HINCRBY), which
is how the fault tests prove "exactly once" across processes.

Configured by the environment: ``INTEROP_AMQP_URL`` (the broker), ``INTEROP_REDIS_URL``
(results and counts), ``INTEROP_EXCHANGE`` and ``INTEROP_QUEUES`` (JSON list): the queues
both apps declare, quorum queues on one topic exchange, as Celery needs them for its native
delayed delivery.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

AMQP_URL = os.environ["INTEROP_AMQP_URL"]
REDIS_URL = os.environ["INTEROP_REDIS_URL"]
EXCHANGE = os.environ.get("INTEROP_EXCHANGE", "")
QUEUES: list[str] = json.loads(os.environ.get("INTEROP_QUEUES", "[]"))

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=1)
    return _client


def queue_dicts() -> list[dict[str, Any]]:
    """``task_queues`` in Celery's dict form, which both apps read."""
    return [
        {
            "name": name,
            "exchange": EXCHANGE,
            "exchange_type": "topic",
            "routing_key": name,
            "queue_arguments": {"x-queue-type": "quorum"},
        }
        for name in QUEUES
    ]


def count(key: str, field: str, side: str) -> str:
    _redis().hincrby(key, field, 1)
    _redis().hincrby(f"{key}:{side}", field, 1)
    return side


def slow_count(key: str, field: str, seconds: float, side: str) -> str:
    """Counted under ``<key>:started`` at once, then as :func:`count` ``seconds`` later."""
    _redis().hincrby(f"{key}:started", field, 1)
    time.sleep(seconds)
    return count(key, field, side)


def tag(acc: list[str], label: str, side: str) -> list[str]:
    return [*acc, f"{label}@{side}"]
