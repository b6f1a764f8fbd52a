"""A benchmark's worker as a subprocess in its own process group, its output in a log file.

Stopping is what an operator does: SIGTERM, wait for the worker's own warm shutdown, and only if
it hangs, SIGKILL the whole group (so no pool child outlives the benchmark).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: The benchmark's own directory: workers import the peer apps (``peers.*``) from it.
BENCH_DIR = Path(__file__).resolve().parent


def bench_env() -> dict[str, str]:
    """This process's environment, with the benchmark's directory first on ``PYTHONPATH``."""
    paths = [str(BENCH_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class WorkerProcess:
    def __init__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.started_at = 0.0  # time.time() of the start
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self._process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait; SIGKILL the group after ``timeout``. Returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                process.wait()
        # Children a crashed parent left behind are still in its group.
        self._kill_group()
        return process.returncode

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
