"""Real ``taskq worker`` processes for the end-to-end tests: start, wait until ready, stop.

Each worker runs ``python -m taskq_cli -A e2e_app worker ...`` in its own directory, where
:func:`start_worker` writes ``e2e_app.py`` (``app = make_app(<dir>)``, see :mod:`e2e_tasks`),
and in its own session, so one ``killpg`` reaches its pool's children too: a test can kill
the whole worker with ``SIGKILL``, and a teardown never leaves a process behind.

Tests import this module by path (``sys.path``), as they import :mod:`worker_harness`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_tasks import RUNS_FILE

from taskq_testing.waiting import wait_until

__all__ = [
    "TIMEOUT",
    "Run",
    "WorkerProcess",
    "live_children",
    "live_in_group",
    "runs",
    "start_worker",
    "wait_for_runs",
    "write_entry_module",
]

TESTS_DIR = Path(__file__).resolve().parent
#: Long enough for a loaded two-core CI machine; a passing test never waits for it.
TIMEOUT = 30.0
#: How long a stopping worker may take before it is killed.
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Run:
    """One start of a task, as the task wrote it to the runs file."""

    at: float
    pid: int


class WorkerProcess:
    """A started ``taskq worker``; :meth:`stop` (or :meth:`kill`) must end it."""

    def __init__(self, pool: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.pool = pool
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            return " ready." in self.log_text()

        wait_until(ready, TIMEOUT, interval=0.02, message=f"{self.pool} worker ready")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """Warm shutdown (``SIGTERM``) and its exit code; killed if it takes too long."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"worker did not stop within {timeout}s of SIGTERM:\n{self.log_tail()}"
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        """``SIGKILL`` to the worker and every process of its session: a crash, as ``kill -9``
        of the worker and its pool children makes one."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(TIMEOUT)

    def stop(self) -> None:
        """For teardowns: warm shutdown if it still runs, then kill anything left over."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.kill()


def write_entry_module(directory: Path, **settings: Any) -> None:
    """``e2e_app.py`` in ``directory``: the app ``-A e2e_app`` loads, with these settings."""
    (directory / "e2e_app.py").write_text(
        textwrap.dedent(f"""\
            from e2e_tasks import make_app

            app = make_app({str(directory)!r}, **{settings!r})
        """)
    )


def start_worker(
    directory: Path, pool: str, *, concurrency: int = 2, **settings: Any
) -> WorkerProcess:
    """Start a worker on ``directory``'s database and wait until it is ready to consume;
    ``settings`` go to :func:`e2e_tasks.make_app` in the worker."""
    write_entry_module(directory, **settings)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(TESTS_DIR), *filter(None, [env.get("PYTHONPATH")])]
    )
    name = f"e2e-{pool}-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, "-m", "taskq_cli", "-A", "e2e_app", "worker", "-P", pool]
    argv += ["-c", str(concurrency), "-l", "INFO", "-n", f"{name}@%h"]
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(pool, process, log)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def runs(directory: Path, label: str) -> list[Run]:
    """Every start of the task run with ``label``, in order."""
    path = directory / RUNS_FILE
    if not path.exists():
        return []
    found: list[Run] = []
    for line in path.read_text().splitlines():
        name, at, pid = line.split()
        if name == label:
            found.append(Run(float(at), int(pid)))
    return found


def wait_for_runs(directory: Path, label: str, count: int = 1) -> list[Run]:
    """Wait until the task with ``label`` started ``count`` times; returns its runs."""

    def started() -> list[Run]:
        found = runs(directory, label)
        return found if len(found) >= count else []

    return wait_until(started, TIMEOUT, message=f"{count} runs of {label}")


def _stat(pid: str) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from the state on (the name may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _live(match: int, field: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            # fields[0] is the state (Z: a zombie, dead), [1] the parent, [2] the group.
            if fields is not None and fields[0] != "Z" and int(fields[field]) == match:
                found.append(int(entry))
    return found


def live_children(pid: int) -> list[int]:
    """The living child processes of ``pid`` (Linux ``/proc``)."""
    return _live(pid, 1)


def live_in_group(pgid: int) -> list[int]:
    """The living processes of process group ``pgid``: zombies do not count, since a
    container's init may never reap the orphans of a killed worker."""
    return _live(pgid, 2)
