"""A process forked while other threads use SQLite can use SQLite at once (no inherited locks).

The worker forks replacement pool children while its fetcher and consumer threads read and
write the broker file; a child that inherited SQLite's internal mutexes locked would hang in
its first ``sqlite3.connect``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from taskq.transports.sqlite import SQLiteTransport
from taskq_testing.factories import make_envelope

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")


def _child(url: str) -> None:
    code = 1
    try:
        transport = SQLiteTransport(url, {})
        transport.connect()
        transport.publish("from-child", make_envelope())
        transport.close()
        code = 0
    finally:
        os._exit(code)


def test_forking_while_threads_write_leaves_the_child_a_working_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.sqlite3'}"
    busy = SQLiteTransport(url, {})
    busy.connect()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            busy.publish("busy", make_envelope())
            busy.queue_length("busy")

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    hung: list[int] = []
    try:
        for _ in range(25):
            pid = os.fork()
            if pid == 0:
                _child(url)
            deadline = time.monotonic() + 10
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung.append(pid)
                    break
                time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        busy.close()
    assert not hung, f"{len(hung)} of 25 children hung in SQLite after fork"
    check = SQLiteTransport(url, {})
    check.connect()
    assert check.queue_length("from-child") == 25
    check.close()
