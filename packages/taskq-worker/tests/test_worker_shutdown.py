"""Starting and stopping: bad configuration fails at start; warm and cold shutdowns."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq_worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app


def _start_fails(app: TaskQ, caplog: pytest.LogCaptureFixture, **options: object) -> str:
    caplog.set_level(logging.INFO)
    assert Worker(app, **options).start() == 1  # type: ignore[arg-type]
    [line] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert not line.exc_info, "one line, no traceback below DEBUG"
    return line.getMessage()


def test_bad_setting_fails_at_start_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    message = _start_fails(memory_app(task_time_limit="soon"), caplog, pool="solo")
    assert "task_time_limit" in message
    assert "'soon'" in message


def test_bad_worker_argument_fails_at_start(caplog: pytest.LogCaptureFixture) -> None:
    message = _start_fails(memory_app(), caplog, pool="threads", concurrency=0)
    assert "worker_concurrency" in message


def test_unknown_pool_fails_at_start(caplog: pytest.LogCaptureFixture) -> None:
    message = _start_fails(memory_app(), caplog, pool="gevnet")
    assert "no pool named 'gevnet'" in message


def test_bad_rate_limit_fails_at_start(caplog: pytest.LogCaptureFixture) -> None:
    app = memory_app()

    @app.task(name="tests.limited", rate_limit="lots")
    def limited() -> None:
        return None

    message = _start_fails(app, caplog, pool="solo")
    assert "tests.limited.rate_limit" in message


def test_unreachable_broker_fails_naming_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}"
    app = TaskQ(
        "tests",
        broker=url,
        backend="memory://",
        broker_connection_max_retries=1,
        worker_hijack_root_logger=False,
    )
    message = _start_fails(app, caplog, pool="solo")
    assert f"cannot connect to the broker at {url}" in message
    assert "Trying again in" in caplog.text, "retried once before giving up"


def test_unknown_queue_to_exclude_fails(caplog: pytest.LogCaptureFixture) -> None:
    message = _start_fails(memory_app(), caplog, pool="solo", exclude_queues="celry")
    assert "celry" in message


def test_banner(capsys: pytest.CaptureFixture[str]) -> None:
    app = memory_app()

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    RunningWorker(
        app, pool="threads", concurrency=3, hostname="b@h", queues="celery,mail"
    ).start().stop()
    out = capsys.readouterr().out
    assert "taskq worker b@h" in out
    assert "concurrency:  3 (threads)" in out
    assert "queues:       celery, mail" in out
    assert "  . tests.add" in out
    assert "SQLite" not in out, "a configured broker gets no note about the default"


def test_warm_shutdown_finishes_the_running_task_and_returns_the_rest() -> None:
    app = memory_app()
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold")
    def hold() -> str:
        started.set()
        release.wait(10)
        return "done"

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    first = hold.delay()
    for _ in range(3):
        hold.delay()
    assert started.wait(5)
    worker.worker.stop()
    threading.Timer(0.3, release.set).start()
    assert worker.join() == 0
    assert first.get(timeout=1) == "done"
    assert app.transport.queue_length("celery") == 3, "prefetched messages went back"


def test_a_second_stop_turns_cold() -> None:
    app = memory_app()
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold")
    def hold() -> None:
        started.set()
        release.wait(10)

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        hold.delay()
        assert started.wait(5)
        worker.worker.stop()
        worker.worker.stop(cold=True)
        assert worker.join() == 1
    finally:
        release.set()
    assert app.transport.queue_length("celery") == 1, "the abandoned task is delivered again"


def test_shutdown_timeout_turns_a_warm_shutdown_cold() -> None:
    app = memory_app(worker_shutdown_timeout=0.3)
    started, release = threading.Event(), threading.Event()

    @app.task(name="tests.hold")
    def hold() -> None:
        started.set()
        release.wait(10)

    worker = RunningWorker(app, pool="threads", concurrency=1).start()
    try:
        hold.delay()
        assert started.wait(5)
        assert worker.stop(timeout=5) == 1
    finally:
        release.set()


_SCRIPT = """
import sys, time
from taskq import TaskQ
from taskq_worker import Worker

app = TaskQ("proj", broker=sys.argv[1])

@app.task(name="proj.slow")
def slow():
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
    return "finished"

sys.exit(Worker(app, pool="solo").start())
"""


def _run_and_signal(tmp_path: Path, sleep: float, signals: list[int]) -> tuple[int, str, TaskQ]:
    """Run a worker process on one task sleeping ``sleep`` s; send ``signals`` once it runs."""
    from taskq_testing.waiting import wait_until

    url = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
    started = tmp_path / "started"
    client = TaskQ("proj", broker=url)
    client.send_task("proj.slow", task_id="the-task")
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), url, str(started), str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(started.exists, 10, message="task started")
        for signum in signals:
            os.kill(process.pid, signum)
            time.sleep(0.2)  # one at a time: Python runs a handler once for signals that pile up
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err, client


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_is_a_warm_shutdown_in_a_real_process(tmp_path: Path) -> None:
    code, err, client = _run_and_signal(tmp_path, 0.5, [signal.SIGTERM])
    assert code == 0, err
    assert client.AsyncResult("the-task").get(timeout=1) == "finished", "it finished first"
    assert "Warm shutdown" in err
    assert client.transport.queue_length("celery") == 0
    client.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_signal_abandons_an_inline_task(tmp_path: Path) -> None:
    """The solo pool runs the task on the main thread; a cold shutdown interrupts it, and its
    unacknowledged message goes back to the queue."""
    code, err, client = _run_and_signal(tmp_path, 30, [signal.SIGINT, signal.SIGINT])
    assert code == 1, err
    assert "Cold shutdown" in err
    assert client.AsyncResult("the-task").state == "PENDING", err
    assert client.transport.queue_length("celery") == 1
    client.close()


# -- losing the broker ----------------------------------------------------------------------------


def _flaky_app(failures: int, **settings: Any) -> TaskQ:
    """An app whose broker fails the first ``failures`` fetches (a restart, a network cut)."""
    import uuid
    from collections.abc import Mapping, Sequence

    from taskq import plugins
    from taskq.contracts import Delivery, TransportError
    from taskq.transports.memory import MemoryTransport

    class FlakyTransport(MemoryTransport):
        schemes = ("flaky",)
        failed = 0

        def __init__(self, url: str, options: Mapping[str, object]) -> None:
            super().__init__(f"memory://{url.partition('://')[2]}", options)

        def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
            if FlakyTransport.failed < failures:
                FlakyTransport.failed += 1
                raise TransportError("connection reset by peer")
            return super().fetch(queues, limit, timeout)

    scheme = f"flaky{uuid.uuid4().hex[:8]}"
    plugins.TRANSPORTS.register(scheme, FlakyTransport)
    name = uuid.uuid4().hex
    return TaskQ(
        "tests",
        broker=f"{scheme}://{name}",
        backend=f"memory://{name}",
        worker_hijack_root_logger=False,
        **settings,
    )


def test_a_lost_broker_is_retried_and_consuming_resumes(caplog: pytest.LogCaptureFixture) -> None:
    app = _flaky_app(1)

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    worker = RunningWorker(app, pool="solo").start()
    try:
        assert add.delay(1, 2).get(timeout=5) == 3
    finally:
        assert worker.stop() == 0
    assert "Broker error: connection reset by peer. Trying again in" in caplog.text


def test_a_lost_broker_stops_the_worker_when_retry_is_off() -> None:
    app = _flaky_app(1, broker_connection_retry=False)
    worker = RunningWorker(app, pool="solo").start()
    assert worker.join(5) == 1
