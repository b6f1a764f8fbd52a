"""The taskq side: taskq-redis's result backend, on Redis or RabbitMQ as the broker.

Worker: ``python -m taskq_cli -A peers.taskq_app worker -P prefork -c N``.
"""

from __future__ import annotations

import os

from peers import counter
from taskq import TaskQ

URL = os.environ[counter.URL_VARIABLE]

app = TaskQ("bench_taskq", broker=counter.broker_url(), backend=URL)
# A queue of its own, so a broker that keeps queues between rounds (RabbitMQ) never hands one
# system's leftovers to another.
app.conf.task_default_queue = "bench.taskq"


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
