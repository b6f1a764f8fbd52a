"""The tasks the end-to-end tests give to real ``taskq worker`` processes.

:func:`make_app` builds the app for one test directory: broker and results in one SQLite file
there, and a ``runs`` file each task appends to when it starts, so a test can count runs and
see when and in which process they happened, across worker restarts and kills. The worker
loads it through a two-line module that the test writes next to the database
(``app = make_app(<dir>)``); the test process builds its own client with the same call.

Tasks that wait do so in short sleeps: the threads pool can interrupt a task (time limits,
``revoke(terminate=True)``) only when it runs Python code, not inside one long ``sleep``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from taskq import TaskQ
from taskq.exceptions import SoftTimeLimitExceeded

__all__ = ["RUNS_FILE", "VISIBILITY_TIMEOUT", "make_app"]

RUNS_FILE = "runs.txt"
#: Short, so a killed worker's message comes back within the test; the worker extends the
#: messages it holds every half of it, so a running task is not handed out twice meanwhile.
VISIBILITY_TIMEOUT = 2.0
#: Small, so a dead worker's task waits at most this long to be noticed.
_POLLING_INTERVAL = 0.02
_STEP = 0.02


def make_app(directory: str | Path, **settings: Any) -> TaskQ:
    """The e2e app whose broker, results and runs file live in ``directory``."""
    root = Path(directory)
    runs = root / RUNS_FILE
    settings.setdefault(
        "broker_transport_options",
        {"visibility_timeout": VISIBILITY_TIMEOUT, "polling_interval": _POLLING_INTERVAL},
    )
    app = TaskQ("e2e", broker=f"sqlite:///{root / 'e2e.sqlite3'}", **settings)

    def record(label: str) -> None:
        # One short write per line, with O_APPEND: lines from several processes never mix.
        with runs.open("a") as out:
            out.write(f"{label} {time.time():.6f} {os.getpid()}\n")

    def nap(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(_STEP)

    @app.task(name="e2e.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="e2e.run")
    def run(label: str, seconds: float = 0.0) -> str:
        """Records that it started, then takes ``seconds``."""
        record(label)
        nap(seconds)
        return label

    @app.task(name="e2e.errback")
    def errback(task_id: str) -> None:
        """A ``link_error`` in Celery's old style (called with the failed task's id only):
        records each call under that id."""
        record(task_id)

    @app.task(name="e2e.flaky", bind=True, max_retries=5)
    def flaky(self: Any, label: str, failures: int, countdown: float) -> int:
        """Fails ``failures`` times, retrying each time after ``countdown`` seconds."""
        record(label)
        if self.request.retries < failures:
            raise self.retry(exc=ConnectionError("not yet"), countdown=countdown)
        return self.request.retries

    @app.task(name="e2e.soft_limited", soft_time_limit=0.3, time_limit=10)
    def soft_limited(label: str) -> str:
        record(label)
        try:
            nap(10)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    @app.task(name="e2e.hard_limited", time_limit=0.5)
    def hard_limited(label: str) -> str:
        record(label)
        nap(30)
        return "not interrupted"

    return app
