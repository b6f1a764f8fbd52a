"""``call``, ``result``, ``purge`` and ``status`` run as the real command in a subprocess, against a
project directory whose app uses a SQLite file; the test reads and writes the same file
through the transport and the result backend."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq_protocol import ResultMeta, states

TIMEOUT = 60


@dataclass
class Project:
    root: Path
    url: str
    app: TaskQ

    def run(self, *argv: str, stdin: int | None = subprocess.DEVNULL, **env: str):
        return subprocess.run(
            [sys.executable, "-m", "taskq_cli", *argv],
            cwd=self.root,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, **env},
            check=False,
        )

    def taskq(self, *argv: str, stdin: int | None = subprocess.DEVNULL):
        return self.run("-A", "proj", *argv, stdin=stdin)

    def messages(self, queue: str = "celery") -> list[tuple[dict, list]]:
        """Take every waiting message of ``queue``: (headers, body) each."""
        deliveries = self.app.transport.fetch([queue], 100, 0.5)
        self.app.transport.ack(deliveries)
        return [(d.envelope.headers, json.loads(d.envelope.body)) for d in deliveries]

    def publish(self, queue: str, count: int) -> None:
        for _ in range(count):
            self.app.send_task("proj.tasks.add", (1, 1), queue=queue)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    url = f"sqlite:///{tmp_path}/x.db"
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
        """,
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(textwrap.dedent(text))
    app = TaskQ("tests", broker=url, set_as_current=False)
    yield Project(tmp_path, url, app)
    app.close()


# -- call ------------------------------------------------------------------------------------------


def test_call_sends_the_task_and_prints_its_id(project):
    done = project.taskq("call", "proj.tasks.add", "-a", "[2, 3]", "-k", '{"z": 1}')
    assert (done.returncode, done.stderr) == (0, "")
    task_id = done.stdout.strip()
    assert str(uuid.UUID(task_id)) == task_id
    [(headers, body)] = project.messages()
    assert (headers["id"], headers["task"]) == (task_id, "proj.tasks.add")
    assert body[:2] == [[2, 3], {"z": 1}]


def test_call_options_reach_the_message(project):
    done = project.taskq(
        "call", "proj.tasks.add", "--countdown", "3600", "--expires", "2030-01-01T00:00:00Z",
        "--queue", "other",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert project.messages() == []
    assert project.app.transport.queue_length("other") == 1
    # Not due for an hour: the message waits in the broker, the eta in its headers.
    project.app.transport.purge("other")
    done = project.taskq(
        "call", "proj.tasks.add", "--eta", "2000-01-01T00:00:00", "--expires", "60"
    )
    [(headers, _)] = project.messages()
    assert headers["eta"].startswith("2000-01-01T00:00:00")
    expires = datetime.fromisoformat(headers["expires"])
    assert 0 < (expires - datetime.now(timezone.utc)).total_seconds() <= 60


def test_call_an_unregistered_task_warns_and_sends(project):
    done = project.taskq("call", "proj.tasks.ad")
    assert done.returncode == 0
    assert done.stderr == (
        "Warning: task 'proj.tasks.ad' is not registered in this app (did you mean "
        "'proj.tasks.add'?); sending it by name anyway\n"
    )
    [(headers, _)] = project.messages()
    assert headers["task"] == "proj.tasks.ad"


def test_the_console_script_finds_the_project_in_the_working_directory(project):
    script = Path(sys.executable).with_name("taskq")
    done = subprocess.run(
        [str(script), "-A", "proj", "call", "proj.tasks.add"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert project.messages()[0][0]["id"] == done.stdout.strip()


# -- result ----------------------------------------------------------------------------------------


def store(project: Project, meta: ResultMeta) -> None:
    project.app.backend.store(meta)


def test_result_prints_the_repr_or_json(project):
    store(project, ResultMeta("t1", states.SUCCESS, {"n": [1, "a"]}))
    done = project.taskq("result", "t1")
    assert (done.returncode, done.stdout) == (0, "{'n': [1, 'a']}\n")
    done = project.taskq("result", "t1", "--json")
    assert (done.returncode, json.loads(done.stdout)) == (0, {"n": [1, "a"]})


def test_result_of_a_failed_task(project):
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
    store(project, ResultMeta.failure("t2", ValueError("boom"), traceback=trace))
    done = project.taskq("result", "t2")
    assert (done.returncode, done.stdout) == (1, "ValueError: boom\n")
    done = project.taskq("result", "t2", "--traceback")
    assert (done.returncode, done.stdout) == (1, trace)
    done = project.taskq("result", "t2", "--json", "--traceback")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "state": "FAILURE",
        "error": "ValueError: boom",
        "traceback": trace,
    }


def test_result_of_a_task_that_is_not_ready(project):
    done = project.taskq("result", "unknown-id")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "Error: task unknown-id is PENDING (unknown id, or not started yet); --wait waits for it\n"
    )
    done = project.taskq("result", "unknown-id", "--timeout", "0.2")
    assert (done.returncode, done.stderr) == (
        1,
        "Error: task unknown-id is still PENDING after 0.2 s\n",
    )


def test_result_wait_blocks_until_the_result_is_stored(project):
    storer = threading.Timer(0.5, store, (project, ResultMeta("t3", states.SUCCESS, 42)))
    storer.start()
    try:
        done = project.taskq("result", "t3", "--wait", "--timeout", "30")
    finally:
        storer.cancel()
    assert (done.returncode, done.stdout) == (0, "42\n")


# -- purge -----------------------------------------------------------------------------------------


def test_purge_deletes_the_app_queues(project):
    project.publish("celery", 3)
    project.publish("other", 2)
    done = project.taskq("purge", "-f")
    assert (done.returncode, done.stdout) == (0, "Purged 3 messages from 1 queue.\n")
    assert project.app.transport.queue_length("other") == 2
    done = project.taskq("purge", "-f", "-Q", "celery,other")
    assert done.stdout == "Purged 2 messages from 2 queues.\n"
    done = project.taskq("purge", "-f")
    assert done.stdout == "No messages purged from 1 queue.\n"


def test_purge_exclude(project):
    project.publish("celery", 1)
    project.publish("other", 1)
    done = project.taskq("purge", "-f", "-Q", "celery,other", "-X", "celery")
    assert done.stdout == "Purged 1 message from 1 queue.\n"
    assert project.app.transport.queue_length("celery") == 1
    assert project.taskq("purge", "-f", "-X", "celery").stdout == "No queues to purge.\n"
    done = project.taskq("purge", "-f", "-X", "nope")
    assert (done.returncode, done.stderr) == (1, "Error: cannot exclude 'nope': no such queue\n")


def test_purge_without_a_terminal_needs_force(project):
    project.publish("celery", 2)
    done = project.taskq("purge")
    assert done.returncode == 1
    assert done.stderr == (
        "Error: purge would delete every waiting message of 1 queue: celery; confirm with -f "
        "(standard input is not a terminal to ask on)\n"
    )
    assert project.app.transport.queue_length("celery") == 2


@pytest.mark.parametrize(("answer", "code", "left"), [("y", 0, 0), ("n", 1, 2), ("", 1, 2)])
def test_purge_asks_on_a_terminal(project, answer, code, left):
    project.publish("celery", 2)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        done = project.taskq("purge", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == code
    assert "this deletes every waiting message of 1 queue: celery" in done.stderr
    assert done.stderr.rstrip().endswith("Delete them? [y/N]" if code == 0 else "Aborted!")
    assert project.app.transport.queue_length("celery") == left


# -- status and errors -----------------------------------------------------------------------------


def test_status_with_no_workers(project):
    started = time.monotonic()
    done = project.taskq("status", "-t", "0.3")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "Error: No nodes replied within time constraint\n"
    assert time.monotonic() - started < TIMEOUT / 2


def test_broker_errors_name_the_url_with_the_password_masked(project):
    done = project.run("-b", "sqlite://user:secret@host/x.db", "call", "t")
    assert done.returncode == 1
    assert "secret" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "Error: cannot use the broker: sqlite://user:****@host/x.db: a SQLite URL names a file"
    )
    done = project.run("-b", "nosuch://h", "call", "t")
    last = done.stderr.splitlines()[-1]
    # Whatever else is installed (taskq-redis adds redis, rediss, ...), the built-ins are listed.
    assert last.startswith("Error: no transport named 'nosuch' is installed. Installed: ")
    assert {"memory", "sqlite"} <= set(last.rstrip(".").split(": ")[-1].split(", "))


def test_import_errors_are_one_line_without_traceback(project):
    (project.root / "broken.py").write_text("import no_such_dependency\n")
    done = project.run("-A", "broken", "status")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "Error: importing 'broken' failed: ModuleNotFoundError: No module named "
        "'no_such_dependency' (run with --debug or TASKQ_TRACEBACK=1 for the traceback)\n"
    )
    done = project.run("-A", "broken", "status", TASKQ_TRACEBACK="1")
    assert "Traceback (most recent call last)" in done.stderr


def test_usage_errors_exit_with_2(project):
    done = project.taskq("nope")
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr
    done = project.taskq("call", "t", "-k", "[]")
    assert done.returncode == 2
    assert "argument -k/--kwargs: expected a JSON object" in done.stderr
