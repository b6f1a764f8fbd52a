"""Example tasks for the quick start: the same code runs on Celery (``Celery`` for ``TaskQ``)."""

from __future__ import annotations

import os
import random

from taskq import TaskQ

# No broker configured: taskq uses the embedded SQLite file taskq.sqlite3 in the working
# directory for messages and results. Point it at a server with TASKQ_BROKER_URL, e.g.
# redis://localhost:6379/0, when the matching package is installed.
app = TaskQ("demo", broker=os.environ.get("TASKQ_BROKER_URL"))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def multiply(x: int, y: int) -> int:
    return x * y


@app.task
def total(numbers: list[int]) -> int:
    return sum(numbers)


class FlakyError(Exception):
    """A transient failure the flaky task recovers from by retrying."""


@app.task(bind=True, autoretry_for=(FlakyError,), retry_backoff=0.2, retry_jitter=False,
          max_retries=5)  # fmt: skip
def flaky(self: object, fails: int) -> str:
    """Fails ``fails`` times, then succeeds: shows automatic retries with backoff."""
    retries: int = self.request.retries  # type: ignore[attr-defined]
    if retries < fails:
        raise FlakyError(f"attempt {retries + 1} failed")
    return f"succeeded after {retries} retries"


@app.task
def roll_dice(sides: int = 6) -> int:
    return random.randint(1, sides)
