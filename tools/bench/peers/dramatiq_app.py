"""The Dramatiq side: its Redis broker, and the Results middleware with its Redis backend.

Worker: ``python -m dramatiq peers.dramatiq_app --processes N`` (8 threads per process, its
default).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from peers import counter

URL = os.environ[counter.URL_VARIABLE]

broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor
def increment() -> None:
    counter.increment()


@dramatiq.actor(store_results=True)
def increment_with_result() -> int:
    return counter.increment()
