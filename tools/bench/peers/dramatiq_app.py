"""The Dramatiq side: its Redis or RabbitMQ broker, and the Results middleware on Redis.

Worker: ``python -m dramatiq peers.dramatiq_app --processes N`` (8 threads per process, its
default).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from peers import counter

URL = os.environ[counter.URL_VARIABLE]

BROKER_URL = counter.broker_url()
if BROKER_URL.startswith("amqp"):
    # kombu writes the default vhost as a trailing "//"; pika wants it quoted.
    pika_url = BROKER_URL[:-2] + "/%2F" if BROKER_URL.endswith("//") else BROKER_URL
    broker: RabbitmqBroker | RedisBroker = RabbitmqBroker(url=pika_url)
else:
    broker = RedisBroker(url=BROKER_URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor
def increment() -> None:
    counter.increment()


@dramatiq.actor(store_results=True)
def increment_with_result() -> int:
    return counter.increment()
