"""The task every system runs: ``INCR`` on one Redis key, from inside the worker's processes.

The task that takes the counter from 0 to 1 also records the time it did (``SET`` once), so the
benchmark measures consumption from the first task executed rather than from the worker's start.
"""

from __future__ import annotations

import functools
import os
import time

import redis

URL_VARIABLE = "BENCH_REDIS_URL"
#: The broker the apps use when it is not that Redis (``tools/bench amqp``); unset: the Redis.
BROKER_VARIABLE = "BENCH_BROKER_URL"
COUNT_KEY = "bench:count"
FIRST_AT_KEY = "bench:first-at"  # time.time() of the first increment


@functools.lru_cache(maxsize=1)
def _client_of(pid: int) -> redis.Redis:
    # One client per process, keyed by pid: prefork pools fork after the app module was
    # imported, and a child must never talk through the connections of its parent.
    return redis.Redis.from_url(os.environ[URL_VARIABLE])


def increment() -> int:
    """Add one to the counter; returns the new count."""
    client = _client_of(os.getpid())
    count = int(client.incr(COUNT_KEY))  # pyright: ignore[reportArgumentType]
    if count == 1:
        client.set(FIRST_AT_KEY, repr(time.time()))
    return count


def broker_url() -> str:
    """The broker every peer app uses: ``BENCH_BROKER_URL``, else the counter's Redis."""
    return os.environ.get(BROKER_VARIABLE) or os.environ[URL_VARIABLE]
