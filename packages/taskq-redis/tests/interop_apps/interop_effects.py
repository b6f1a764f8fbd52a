"""What the interop tasks do, shared by the Celery app and the taskq app.

Both apps register the same task names with the same behaviour, so a message can be routed to
either worker by its queue alone; each result says which side ran it. Executions are counted
in Redis (HINCRBY), which is how the tests prove "exactly once" across processes. The count is
written with retries for up to 30 s: the fault tests stop Redis under running tasks, and a
lost count would look like a lost task.

Configured by the environment: ``INTEROP_REDIS_URL`` (broker, results and counts) and
``INTEROP_TRANSPORT_OPTIONS`` (JSON, the broker transport options of both apps).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

REDIS_URL = os.environ["INTEROP_REDIS_URL"]
TRANSPORT_OPTIONS: dict[str, Any] = json.loads(os.environ.get("INTEROP_TRANSPORT_OPTIONS", "{}"))

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=1)
    return _client


def _retrying(command: str, *args: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            return _redis().execute_command(command, *args)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def count(key: str, field: str, side: str) -> str:
    """One more execution of ``field``; which side ran it goes to ``<key>:<side>``."""
    _retrying("HINCRBY", key, field, 1)
    _retrying("HINCRBY", f"{key}:{side}", field, 1)
    return side


def slow_count(key: str, field: str, seconds: float, side: str) -> str:
    """Counted under ``<key>:started`` at once, then as :func:`count` ``seconds`` later."""
    _retrying("HINCRBY", f"{key}:started", field, 1)
    time.sleep(seconds)
    return count(key, field, side)


def tag(acc: list[str], label: str, side: str) -> list[str]:
    return [*acc, f"{label}@{side}"]


def tsum(values: list[Any]) -> int:
    """The sum of the values, of nested lists too (a chord header holding groups)."""
    return sum(tsum(v) if isinstance(v, list) else v for v in values)


def collect(parts: list[Any], key: str, side: str) -> dict[str, Any]:
    """A chord body: counts its runs under ``key``."""
    runs = int(_retrying("INCR", key))
    return {"parts": sorted(parts, key=repr), "side": side, "run": runs}
