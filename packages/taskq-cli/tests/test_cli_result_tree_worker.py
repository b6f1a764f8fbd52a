"""``taskq result --tree`` on workflows a real ``taskq worker`` ran (SQLite broker and result
store, ``result_extended`` on so task names are stored)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import Signature, chain, chord, group, signature
from taskq.result import AsyncResult, GroupResult

TIMEOUT = 60


@dataclass
class Running:
    root: Path
    app: TaskQ

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

    def s(self, name: str, *args: object) -> Signature:
        return signature(f"proj.tasks.{name}", args, app=self.app)

    def wait_stored(self, *task_ids: str) -> None:
        got = self.app.backend.wait(list(task_ids), TIMEOUT)
        assert set(got) == set(task_ids), f"not stored after {TIMEOUT} s"


def parent_of(result: AsyncResult[Any] | GroupResult) -> AsyncResult[Any] | GroupResult:
    assert result.parent is not None
    return result.parent


PROJECT = {
    "proj/__init__.py": "",
    "proj/taskq.py": """
        from taskq import TaskQ

        app = TaskQ("proj", broker="{url}", include=["proj.tasks"], result_extended=True)
    """,
    "proj/tasks.py": """
        from proj.taskq import app

        @app.task
        def add(x, y):
            return x + y

        @app.task
        def fail(*args):
            raise ValueError("boom")

        @app.task
        def tsum(numbers):
            return sum(numbers)

        @app.task
        def spawn():
            return add.delay(2, 2).id
    """,
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("project")
    url = f"sqlite:///{root}/x.db"
    for relative, text in PROJECT.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(textwrap.dedent(text).replace("{url}", url))
    app = TaskQ("tests", broker=url, set_as_current=False)
    log = root / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskq_cli", "-A", "proj", "worker", "-P", "solo", "-l", "info"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not app.control.ping(timeout=0.5):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
        yield Running(root, app)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        app.close()


def test_a_chain_waited_for_from_its_last_step(running):
    last = chain(running.s("add", 1, 2), running.s("add", 3), running.s("add", 4)).apply_async()
    second = parent_of(last)
    first = parent_of(second)
    done = running.taskq("result", last.id, "--tree", "--wait", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "chain\n"
        f"├── proj.tasks.add {first.id} SUCCESS 3\n"
        f"├── proj.tasks.add {second.id} SUCCESS 6\n"
        f"└── proj.tasks.add {last.id} SUCCESS 10\n"
    )
    again = running.taskq("result", first.id, "--tree", "--json")
    tree = json.loads(again.stdout)
    assert [(s["id"], s["state"], s["result"]) for s in tree["steps"]] == [
        (first.id, "SUCCESS", 3),
        (second.id, "SUCCESS", 6),
        (last.id, "SUCCESS", 10),
    ]


def test_a_chain_that_failed_half_way(running):
    last = chain(running.s("add", 1, 1), running.s("fail"), running.s("add", 5)).apply_async()
    failing = parent_of(last)
    first = parent_of(failing)
    running.wait_stored(failing.id, last.id)
    done = running.taskq("result", first.id, "--tree")
    # The failed step lists nothing after it: the next step was never sent.
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout == (
        "chain\n"
        f"├── proj.tasks.add {first.id} SUCCESS 2\n"
        f"└── proj.tasks.fail {failing.id} FAILURE ValueError: boom\n"
    )
    # The step that never ran was given the failure (as Celery does), with nothing leading
    # back to the chain.
    done = running.taskq("result", last.id, "--tree", "--no-color")
    assert (done.returncode, done.stdout) == (1, f"{last.id} FAILURE ValueError: boom\n")


def test_callbacks_are_a_group_after_the_task(running):
    result = running.app.send_task(
        "proj.tasks.add", (1, 1), link=[running.s("add", 10), running.s("add", 20)]
    )
    running.wait_stored(result.id)
    meta = running.app.backend.get(result.id)
    assert meta is not None
    (callbacks,) = meta.child_refs()  # several callbacks go out as one group, as in Celery
    assert callbacks.children is not None
    first, second = (ref.id for ref in callbacks.children)
    running.wait_stored(first, second)
    done = running.taskq("result", second, "--tree")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "chain\n"
        f"├── proj.tasks.add {result.id} SUCCESS 2\n"
        f"└── group {callbacks.id} (2 members)\n"
        f"    ├── proj.tasks.add {first} SUCCESS 12\n"
        f"    └── proj.tasks.add {second} SUCCESS 22\n"
    )


def test_a_task_sent_from_a_task_body(running):
    spawner = running.app.send_task("proj.tasks.spawn")
    running.wait_stored(spawner.id)
    meta = running.app.backend.get(spawner.id)
    assert meta is not None
    child_id = meta.result
    running.wait_stored(child_id)
    expected = (
        "chain\n"
        f"├── proj.tasks.spawn {spawner.id} SUCCESS '{child_id}'\n"
        f"└── proj.tasks.add {child_id} SUCCESS 4\n"
    )
    for given in (child_id, spawner.id):
        done = running.taskq("result", given, "--tree")
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")


# -- chords ------------------------------------------------------------------------------------


def test_a_chord_in_a_chain(running):
    header = group(running.s("add", 1), running.s("add", 2))
    last = chain(
        running.s("add", 1, 1), chord(header, running.s("tsum")), running.s("add", 10)
    ).apply_async()
    body = parent_of(last)
    header_result = parent_of(body)
    first = parent_of(header_result)
    assert isinstance(header_result, GroupResult)
    h1, h2 = (member.id for member in header_result.results)
    done = running.taskq("result", last.id, "--tree", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "chain\n"
        f"├── proj.tasks.add {first.id} SUCCESS 2\n"
        f"└── chord {header_result.id} (2 in header)\n"
        f"    ├── proj.tasks.add {h1} SUCCESS 3\n"
        f"    ├── proj.tasks.add {h2} SUCCESS 4\n"
        "    └── body: chain\n"
        f"        ├── proj.tasks.tsum {body.id} SUCCESS 7\n"
        f"        └── proj.tasks.add {last.id} SUCCESS 17\n"
    )
    for given in (first.id, h1, body.id):
        again = running.taskq("result", given, "--tree")
        assert (again.returncode, again.stdout) == (0, done.stdout)


def test_a_chord_from_its_body(running):
    body = chord([running.s("add", 1, 1), running.s("add", 2, 2)], running.s("tsum")).apply_async()
    header_result = parent_of(body)
    assert isinstance(header_result, GroupResult)
    header_ids = [member.id for member in header_result.results]
    done = running.taskq("result", body.id, "--tree", "--json", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stderr) == (0, "")
    tree = json.loads(done.stdout)
    assert (tree["type"], tree["id"]) == ("chord", header_result.id)
    assert (tree["body"]["id"], tree["body"]["state"], tree["body"]["result"]) == (
        body.id,
        "SUCCESS",
        6,
    )
    # The header is saved only when it holds groups (as Celery's Redis chords); otherwise the
    # store leads from the body to the header task that finished last, and no further.
    members = tree["header"]["members"]
    assert tree["header"]["size"] in (None, 2)
    assert members
    assert {m["id"] for m in members} <= set(header_ids)
    assert {(m["name"], m["state"]) for m in members} == {("proj.tasks.add", "SUCCESS")}


def test_a_chord_whose_header_task_failed(running):
    body = chord([running.s("add", 1, 1), running.s("fail")], running.s("tsum")).apply_async()
    header_result = parent_of(body)
    assert isinstance(header_result, GroupResult)
    failed_id = header_result.results[1].id
    done = running.taskq("result", body.id, "--tree", "--timeout", str(TIMEOUT))
    assert (done.returncode, done.stderr) == (1, "")
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"chord {header_result.id} (")
    assert lines[-1] == (
        f"└── body: {body.id} FAILURE taskq.exceptions.ChordError: Dependency {failed_id} "
        "raised ValueError('boom')"
    )
