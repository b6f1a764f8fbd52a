# pyright: strict
"""Real ``celery worker`` and ``taskq worker`` processes for interop and fault tests.

A package's interop tests keep their worker apps (a taskq module and a Celery module, which
read their broker settings from environment variables) in a directory of their own;
:class:`InteropApps` names that directory, the two modules and the variables, and starts
workers from them by argv (``python -m taskq_cli`` / ``python -m celery``), so nothing here
imports Celery. Each worker runs in its own session, so ``kill()`` reaches a prefork pool's
children too, and writes its output to a log file that a failing test shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "READY_TIMEOUT",
    "STOP_TIMEOUT",
    "InteropApps",
    "StartedWorkers",
    "WorkerProcess",
    "answers_ping",
    "node_name",
]

#: How long ``stop()`` waits after SIGTERM (and ``kill()`` after SIGKILL) for the process.
STOP_TIMEOUT = 20.0
#: How long ``wait_ready()`` waits for a first answer by default: a loaded machine is slow.
READY_TIMEOUT = 30.0


def node_name(side: str) -> str:
    """A node name no other test's worker has (``<side>-<hex>@interop``)."""
    return f"{side}-{uuid.uuid4().hex[:10]}@interop"


def answers_ping(app: Any) -> Callable[[str], bool]:
    """For ``wait_ready``: whether node answers ``app.control.ping`` (a Celery or taskq app)."""

    def answers(node: str) -> bool:
        return bool(app.control.ping(destination=[node], timeout=0.5))

    return answers


class WorkerProcess:
    """One worker process; ``stop()`` shuts it down warmly, ``kill()`` with SIGKILL."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, node: str) -> None:
        self.argv = list(argv)
        self.node = node
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def wait_ready(self, ping: Callable[[str], bool], timeout: float = READY_TIMEOUT) -> None:
        """Until ``ping(node)`` says the worker answers; fails with the log if it died."""
        deadline = time.monotonic() + timeout
        while not ping(self.node):
            if not self.alive():
                raise AssertionError(
                    f"{self.node} exited ({self.process.returncode}):\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.node} did not answer within {timeout} s:\n{self.tail()}"
                )

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL if it has not exited in time."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole session: the worker and any pool processes."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)


@dataclass(frozen=True)
class InteropApps:
    """A directory holding a taskq app module and a Celery app module, and their settings.

    ``variables`` (broker URLs and the like, which the modules read) are added to this
    process's environment; ``directory`` goes first on ``PYTHONPATH`` so ``-A <module>``
    imports.
    """

    directory: Path
    taskq_app: str
    celery_app: str
    variables: Mapping[str, str] = field(default_factory=dict[str, str])

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.directory), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, **self.variables, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}

    def taskq_worker(
        self,
        log: Path,
        queues: Sequence[str],
        *,
        pool: str = "threads",
        concurrency: int = 4,
        extra: Sequence[str] = (),
    ) -> WorkerProcess:
        """``taskq worker`` consuming ``queues``; wait for it with ``wait_ready``."""
        node = node_name("taskq")
        argv = [
            sys.executable, "-m", "taskq_cli", "-A", self.taskq_app, "worker",
            "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues), "-n", node, "-l", "info",
            *extra,
        ]  # fmt: skip
        return WorkerProcess(argv, self.environment(), log, node)

    def celery_worker(
        self,
        log: Path,
        queues: Sequence[str],
        *,
        pool: str = "solo",
        concurrency: int = 1,
        extra: Sequence[str] = (),
    ) -> WorkerProcess:
        """``celery worker`` consuming ``queues``, without gossip, mingle and heartbeats (which
        only slow its start and add traffic no test reads)."""
        node = node_name("celery")
        argv = [
            sys.executable, "-m", "celery", "-A", self.celery_app, "worker",
            "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues), "-n", node, "-l", "info",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            *extra,
        ]  # fmt: skip
        return WorkerProcess(argv, self.environment(), log, node)

    def start_both(
        self,
        started: StartedWorkers,
        logs: Path,
        *,
        celery_queues: Sequence[str],
        taskq_queues: Sequence[str],
        celery_client: Any,
        taskq_client: Any,
    ) -> tuple[WorkerProcess, WorkerProcess]:
        """A Celery and a taskq worker with their default pools, logging to ``logs``; returns
        ``(celery_worker, taskq_worker)`` once each answers a ping from its side's client
        (``started`` stops them, whatever happens meanwhile)."""
        celery_worker = started.add(self.celery_worker(logs / "celery.log", celery_queues))
        taskq_worker = started.add(self.taskq_worker(logs / "taskq.log", taskq_queues))
        celery_worker.wait_ready(answers_ping(celery_client))
        taskq_worker.wait_ready(answers_ping(taskq_client))
        return celery_worker, taskq_worker


class StartedWorkers:
    """The worker processes a test (or module) started, all stopped together at its end.

    Used as a context manager by a fixture: ``with StartedWorkers() as started: yield started``.
    """

    def __init__(self) -> None:
        self._workers: list[WorkerProcess] = []

    def add(self, worker: WorkerProcess) -> WorkerProcess:
        self._workers.append(worker)
        return worker

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(self._workers)

    def logs(self) -> str:
        """Each worker's last output, for a failing test's message."""
        return "\n".join(f"--- {w.node}\n{w.tail()}" for w in self._workers)

    def stop(self) -> None:
        """Stop each (killed if it hangs), even when stopping another one failed."""
        errors: list[BaseException] = []
        for worker in self._workers:
            try:
                worker.stop()
            except Exception as exc:  # the others must still be stopped
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> StartedWorkers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
