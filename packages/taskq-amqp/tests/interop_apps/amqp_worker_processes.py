"""Real worker processes for the interop and fault tests: ``celery worker`` and ``taskq worker``.

Each runs in its own session (so ``kill()`` reaches a prefork pool's children too), with this
directory on ``PYTHONPATH`` so ``-A amqp_celery_side`` / ``-A amqp_taskq_side`` import, and its output in
a log file that a failing test shows. The tests load this module by path (pytest's importlib
mode does not import sibling modules).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
STOP_TIMEOUT = 20.0
READY_TIMEOUT = 30.0


def node_name(side: str) -> str:
    """A node name no other test's worker has (``taskq-<hex>@<host>``)."""
    return f"{side}-{uuid.uuid4().hex[:10]}@interop"


def environment(
    amqp_url: str, redis_url: str, exchange: str, queues: Sequence[str]
) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "INTEROP_AMQP_URL": amqp_url,
        "INTEROP_REDIS_URL": redis_url,
        "INTEROP_EXCHANGE": exchange,
        "INTEROP_QUEUES": json.dumps(list(queues)),
        "PYTHONUNBUFFERED": "1",
    }


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

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def stop(self) -> None:
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


def start_taskq_worker(
    env: Mapping[str, str],
    log: Path,
    queues: Sequence[str],
    *,
    pool: str = "threads",
    concurrency: int = 4,
    extra: Sequence[str] = (),
) -> WorkerProcess:
    node = node_name("taskq")
    argv = [
        sys.executable, "-m", "taskq_cli", "-A", "amqp_taskq_side", "worker",
        "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues), "-n", node, "-l", "info",
        *extra,
    ]  # fmt: skip
    return WorkerProcess(argv, env, log, node)


def start_celery_worker(
    env: Mapping[str, str],
    log: Path,
    queues: Sequence[str],
    *,
    pool: str = "solo",
    concurrency: int = 1,
) -> WorkerProcess:
    node = node_name("celery")
    argv = [
        sys.executable, "-m", "celery", "-A", "amqp_celery_side", "worker",
        "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues), "-n", node, "-l", "info",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    return WorkerProcess(argv, env, log, node)
