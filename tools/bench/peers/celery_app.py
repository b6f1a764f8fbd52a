"""The Celery side: Redis or RabbitMQ broker, Redis result backend, Celery's defaults otherwise.

Worker: ``python -m celery -A peers.celery_app worker -P prefork -c N``.
"""

from __future__ import annotations

import os

from celery import Celery

from peers import counter

URL = os.environ[counter.URL_VARIABLE]

app = Celery("bench_celery", broker=counter.broker_url(), backend=URL)
app.conf.task_default_queue = "bench.celery"  # its own queue, as taskq's and Dramatiq's
# Only silences the 5.x deprecation warning about this setting; the value is Celery's default.
app.conf.broker_connection_retry_on_startup = True


@app.task(ignore_result=True)
def increment() -> None:
    counter.increment()


@app.task
def increment_with_result() -> int:
    return counter.increment()


@app.task
def noop() -> None:
    """A member of the canvas benchmark's groups and chord headers: nothing but its result."""


@app.task
def count(values: list[object]) -> int:
    """The canvas benchmark's chord body: how many header results it was given."""
    return len(values)
