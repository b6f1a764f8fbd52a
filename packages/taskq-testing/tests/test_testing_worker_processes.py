"""WorkerProcess and InteropApps with a stand-in worker: a Python process that writes a file
when it is ready and exits on SIGTERM (the real workers run in taskq-redis's and taskq-amqp's
interop tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from taskq_testing.waiting import wait_until
from taskq_testing.worker_processes import InteropApps, StartedWorkers, WorkerProcess

STAND_IN = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
print("worker up", flush=True)
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    time.sleep(0.1)
"""


def _stand_in(tmp_path: Path, name: str = "w") -> WorkerProcess:
    ready = tmp_path / f"{name}.ready"
    argv = [sys.executable, "-c", STAND_IN, str(ready)]
    return WorkerProcess(argv, {}, tmp_path / f"{name}.log", f"{name}@test")


def _is_ready(tmp_path: Path, name: str = "w") -> bool:
    return (tmp_path / f"{name}.ready").exists()


def test_a_worker_is_ready_logs_and_stops_warmly(tmp_path: Path) -> None:
    worker = _stand_in(tmp_path)
    worker.wait_ready(lambda node: node == "w@test" and _is_ready(tmp_path))
    wait_until(lambda: "worker up" in worker.output(), 10, message="output in the log")
    assert worker.alive()
    worker.stop()
    assert not worker.alive()
    assert worker.process.returncode == 3  # its SIGTERM handler ran


def test_kill_ends_a_worker_with_sigkill(tmp_path: Path) -> None:
    worker = _stand_in(tmp_path)
    worker.wait_ready(lambda _node: _is_ready(tmp_path))
    worker.kill()
    assert worker.process.returncode == -9


def test_wait_ready_fails_with_the_log_when_the_worker_exits(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('bad config'); raise SystemExit(2)"]
    worker = WorkerProcess(argv, {}, tmp_path / "dead.log", "dead@test")
    with pytest.raises(AssertionError, match=r"(?s)dead@test exited \(2\).*bad config"):
        worker.wait_ready(lambda _node: False)


def test_started_workers_are_all_stopped(tmp_path: Path) -> None:
    with StartedWorkers() as started:
        first = started.add(_stand_in(tmp_path, "a"))
        second = started.add(_stand_in(tmp_path, "b"))
        assert len(started) == 2
        wait_until(lambda: _is_ready(tmp_path, "a") and _is_ready(tmp_path, "b"), 30)
        assert "--- a@test" in started.logs()
    assert not first.alive()
    assert not second.alive()


def test_interop_apps_put_their_directory_on_the_path_and_name_their_modules(
    tmp_path: Path,
) -> None:
    apps = InteropApps(tmp_path, "my_taskq_side", "my_celery_side", {"INTEROP_X": "1"})
    env = apps.environment()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)
    assert env["INTEROP_X"] == "1"
    # The app modules do not exist, so these workers exit at once: only their argv is read.
    worker = apps.taskq_worker(tmp_path / "t.log", ["q1", "q2"], concurrency=2)
    try:
        argv = worker.argv
        assert argv[1:6] == ["-m", "taskq_cli", "-A", "my_taskq_side", "worker"]
        assert argv[argv.index("-Q") + 1] == "q1,q2"
        assert argv[argv.index("-c") + 1] == "2"
    finally:
        worker.kill()
    celery = apps.celery_worker(tmp_path / "c.log", ["q"])
    try:
        assert celery.argv[1:6] == ["-m", "celery", "-A", "my_celery_side", "worker"]
        assert "--without-mingle" in celery.argv
    finally:
        celery.kill()
