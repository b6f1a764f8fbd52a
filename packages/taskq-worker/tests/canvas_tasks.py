"""The tasks the canvas tests give to real ``taskq worker`` processes, on SQLite or on Redis.

:func:`make_app` builds the app of one test setup: its broker, its result store and its queue
(``task_default_queue``, so the bodies and callbacks a worker sends stay on the test's queue),
and a ``runs`` file in a directory every process sees. Tasks that must be counted append a
line to it when they start (the format of :mod:`e2e_tasks`, read with
:func:`e2e_support.runs`): that is how the tests prove a chord body ran exactly once, on SQLite
as on Redis. The worker loads the app through a small module the test writes
(:func:`write_entry_module`); the test process builds its own client with the same call.

The worker's app also gets a *kill switch* (``worker=True``): when the file
:data:`KILL_BEFORE_PUBLISHING` exists in the directory and names the task about to be
published, the first process to publish that task removes the file and sends ``SIGKILL`` to
its whole process group: the worker dies exactly between claiming a chord and sending its
body, the window a crash of a real worker can hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

from e2e_tasks import RUNS_FILE

from taskq import TaskQ, signals
from taskq.canvas import group

__all__ = ["KILL_BEFORE_PUBLISHING", "make_app", "write_entry_module"]

KILL_BEFORE_PUBLISHING = "kill-before-publishing"
#: Short, so a killed worker's messages come back within a test; a live worker extends the
#: deliveries it holds every half of it, so a running task is not handed out twice meanwhile.
VISIBILITY_TIMEOUT = 2.0
_STEP = 0.02


def make_app(
    directory: str | Path,
    broker: str,
    backend: str,
    queue: str,
    *,
    worker: bool = False,
    **settings: Any,
) -> TaskQ:
    """The canvas app of the setup in ``directory``; ``worker=True`` for the worker's copy."""
    root = Path(directory)
    runs = root / RUNS_FILE
    app = TaskQ("canvas", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(task_default_queue=queue, **settings)

    def record(label: str) -> None:
        # One short write per line, with O_APPEND: lines from several processes never mix.
        with runs.open("a") as out:
            out.write(f"{label} {time.time():.6f} {os.getpid()}\n")

    def nap(seconds: float) -> None:
        # Short sleeps: the threads pool can stop a task only while it runs Python code.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(_STEP)

    @app.task(name="canvas.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="canvas.tsum")
    def tsum(values: list[Any]) -> int:
        """The sum of the values, of nested lists too (a header holding groups)."""
        return sum(tsum.run(v) if isinstance(v, list) else v for v in values)

    @app.task(name="canvas.collect")
    def collect(values: list[Any]) -> list[Any]:
        return values

    @app.task(name="canvas.fail")
    def fail(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="canvas.counted")
    def counted(values: Any, label: str) -> Any:
        """A body that records each of its runs under ``label``."""
        record(label)
        return values

    @app.task(name="canvas.slow")
    def slow(value: Any, label: str, seconds: float) -> Any:
        """Records that it started, then takes ``seconds``."""
        record(label)
        nap(seconds)
        return value

    @app.task(name="canvas.flaky", bind=True, max_retries=5)
    def flaky(self: Any, value: Any, label: str, failures: int) -> Any:
        """Fails ``failures`` times, retrying each time, then passes ``value`` on."""
        record(label)
        if self.request.retries < failures:
            raise self.retry(exc=ConnectionError("not yet"), countdown=0.1)
        return value

    @app.task(name="canvas.replaced_by_task", bind=True)
    def replaced_by_task(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    @app.task(name="canvas.replaced_by_chain", bind=True)
    def replaced_by_chain(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 1) | add.s(1000))

    @app.task(name="canvas.replaced_by_group", bind=True)
    def replaced_by_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(name="canvas.errback_new")
    def errback_new(request: Any, exc: BaseException, traceback: str | None, label: str) -> None:
        """A new-style errback (it takes the request): records the task and the error."""
        record(f"{label}:{request.id}:{type(exc).__name__}")

    @app.task(name="canvas.errback_old")
    def errback_old(task_id: str, label: str) -> None:
        """An old-style errback (called with the failed task's id): records the id."""
        record(f"{label}:{task_id}")

    if worker:
        _install_kill_switch(app, root / KILL_BEFORE_PUBLISHING)
    return app


def _install_kill_switch(app: TaskQ, switch: Path) -> None:
    def kill_before_publishing(sender: object = None, **_: Any) -> None:
        try:
            armed_for = switch.read_text().strip()
        except FileNotFoundError:
            return
        if sender != armed_for:
            return
        with contextlib.suppress(FileNotFoundError):
            switch.unlink()  # only the process that removed it dies
            os.killpg(os.getpgrp(), signal.SIGKILL)

    signals.before_task_publish.connect(kill_before_publishing, weak=False)


def write_entry_module(
    directory: Path, module: str, broker: str, backend: str, queue: str, **settings: Any
) -> None:
    """``<module>.py`` in ``directory``: the worker's app (``-A <module>``)."""
    (directory / f"{module}.py").write_text(
        textwrap.dedent(f"""\
            from canvas_tasks import make_app

            app = make_app(
                {str(directory)!r}, {broker!r}, {backend!r}, {queue!r}, worker=True,
                **{settings!r}
            )
        """)
    )
