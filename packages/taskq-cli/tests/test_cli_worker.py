"""End to end: ``taskq worker`` runs in a subprocess on a SQLite broker; ``status`` pings it,
``call`` sends it tasks and ``result --wait`` reads what it stored."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq_protocol import states

TIMEOUT = 60
NODE = f"w1@{socket.gethostname()}"


@dataclass
class Running:
    root: Path
    app: TaskQ
    worker: subprocess.Popen[str]
    log: Path
    purged_ids: list[str]

    def taskq(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskq_cli", "-A", "proj", *argv],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


def write_project(root: Path, url: str) -> None:
    files = {
        "proj/__init__.py": "",
        "proj/taskq.py": f"""
            from taskq import TaskQ

            app = TaskQ("proj", broker="{url}", include=["proj.tasks"])
        """,
        "proj/tasks.py": """
            from proj.taskq import app

            @app.task
            def add(x, y):
                return x + y

            @app.task
            def fail():
                raise ValueError("boom")
        """,
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("project")
    url = f"sqlite:///{root}/x.db"
    write_project(root, url)
    app = TaskQ("tests", broker=url, set_as_current=False)
    # Waiting before the worker starts with --purge: it must delete them, not run them.
    purged_ids = [app.send_task("proj.tasks.add", (1, 1)).id for _ in range(2)]
    log = root / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskq_cli", "-A", "proj", "worker", "-P", "solo", "-n",
             "w1@%h", "-Q", "celery,extra", "-l", "info", "--purge"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not app.control.ping(timeout=0.5):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
        yield Running(root, app, worker, log, purged_ids)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        app.close()


def test_status_lists_the_worker(running):
    done = running.taskq("status", "-t", "0.5")
    assert (done.returncode, done.stdout) == (0, f"{NODE}: OK\n\n1 node online.\n")
    done = running.taskq("status", "--json", "-q", "-t", "0.5")
    assert done.returncode == 0
    assert json.loads(done.stdout) == [{NODE: {"ok": "pong"}}]
    done = running.taskq("-q", "status", "-d", NODE, "-t", "0.5")
    assert (done.returncode, done.stdout) == (0, f"{NODE}: OK\n")


def test_status_for_another_destination_gets_no_reply(running):
    done = running.taskq("status", "-d", "nobody@nowhere", "-t", "0.5")
    assert (done.returncode, done.stderr) == (1, "Error: No nodes replied within time constraint\n")


def test_call_then_result_wait(running):
    sent = running.taskq("call", "proj.tasks.add", "-a", "[2, 3]")
    assert (sent.returncode, sent.stderr) == (0, "")
    done = running.taskq("result", sent.stdout.strip(), "--wait", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stdout) == (0, "5\n")


def test_call_to_another_consumed_queue(running):
    sent = running.taskq("call", "proj.tasks.add", "-k", '{"x": 1, "y": 2}', "--queue", "extra")
    done = running.taskq("result", sent.stdout.strip(), "--timeout", str(TIMEOUT), "--json")
    assert (done.returncode, done.stdout) == (0, "3\n")


def test_call_a_failing_task_then_result(running):
    sent = running.taskq("call", "proj.tasks.fail")
    task_id = sent.stdout.strip()
    done = running.taskq("result", task_id, "--wait", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stdout) == (1, "ValueError: boom\n")
    done = running.taskq("result", task_id, "--traceback")
    assert done.returncode == 1
    assert done.stdout.startswith("Traceback (most recent call last):")
    assert done.stdout.rstrip().endswith("ValueError: boom")
    assert 'raise ValueError("boom")' in done.stdout


def test_worker_options_reached_the_worker(running):
    # --purge deleted what was waiting before the start, so those tasks never ran.
    assert [running.app.AsyncResult(i).state for i in running.purged_ids] == [states.PENDING] * 2
    text = running.log.read_text()
    assert "Purged 2 messages" in text
    banner = " ".join(text.split())
    assert "concurrency: 1 (solo)" in banner
    assert "queues: celery, extra" in banner


def test_sigterm_stops_the_worker_with_status_0(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    write_project(tmp_path, url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq_cli", "-A", "proj", "worker", "-P", "solo"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = TaskQ("tests", broker=url, set_as_current=False)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not app.control.ping(timeout=0.5):
            assert worker.poll() is None
            assert time.monotonic() < deadline
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(TIMEOUT) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
        app.close()


def test_worker_that_cannot_start_exits_1(tmp_path):
    write_project(tmp_path, f"sqlite:///{tmp_path}/x.db")
    done = subprocess.run(
        [sys.executable, "-m", "taskq_cli", "-A", "proj", "worker", "-P", "nosuchpool"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert "nosuchpool" in done.stdout + done.stderr
