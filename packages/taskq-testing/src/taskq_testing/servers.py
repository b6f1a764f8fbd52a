# pyright: strict
"""Private server processes for tests that must stop, restart or configure their own server.

A test that restarts Redis under load, or needs TLS or a Unix socket, cannot use the shared
server on the standard port. :class:`ServerProcess` starts one binary on a free port (the argv
is built by the caller, so the same class serves redis-server, memcached or ZooKeeper), waits
for a protocol-level ping rather than an open port, and stops it with SIGTERM, waiting until
the process is gone (``../shared/SERVERS.md``'s ground rules).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["free_port", "ServerProcess", "ServerStartError", "binary_or_none"]


class ServerStartError(RuntimeError):
    """The server did not answer its ping in time; the message holds the end of its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary_or_none(name: str, *extra_dirs: str) -> str | None:
    """The path of ``name`` on PATH or in ``extra_dirs`` (``/usr/sbin``), else ``None``."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file():
            return str(candidate)
    return None


class ServerProcess:
    """One server process: ``start()``, ``stop()``, ``restart()``; a context manager too.

    ``ping()`` returns True once the server accepts real requests; ``start`` polls it for up
    to ``start_timeout`` seconds. Output goes to ``log_path`` so a failed start can say why.
    """

    def __init__(
        self,
        argv: Sequence[str],
        ping: Callable[[], bool],
        *,
        log_path: Path,
        start_timeout: float = 15.0,
    ) -> None:
        self.argv = list(argv)
        self.ping = ping
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._ping_quietly():
                return
            time.sleep(0.02)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise ServerStartError(f"{self.argv[0]} did not answer within the start timeout:\n{tail}")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``kill``) and wait until the process is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self, *, down_for: float = 0.0) -> None:
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ping_quietly(self) -> bool:
        try:
            return self.ping()
        except Exception:  # any failure just means "not ready yet"
            return False

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
