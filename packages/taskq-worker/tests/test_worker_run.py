"""A worker runs tasks and stores their results, on each pool, and keeps to its prefetch."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from taskq import signals, states
from taskq.exceptions import TimeLimitExceeded

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app, sqlite_app


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_runs_tasks_and_stores_results(pool: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = memory_app()

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tests.fail")
    def fail() -> None:
        raise ValueError("boom")

    worker = RunningWorker(app, pool=pool, concurrency=2).start()
    try:
        results = [add.delay(i, i) for i in range(10)]
        failed = fail.delay()
        assert [r.get(timeout=5) for r in results] == [2 * i for i in range(10)]
        with pytest.raises(ValueError, match="boom"):
            failed.get(timeout=5)
    finally:
        assert worker.stop() == 0
    assert failed.state == states.FAILURE
    assert app.transport.queue_length("celery") == 0, "every message was acknowledged"
    text = caplog.text
    first = results[0].id
    assert f"Task tests.add[{first}] received" in text
    assert f"Task tests.add[{first}] succeeded in " in text
    assert f"Task tests.fail[{failed.id}] raised ValueError('boom')" in text
    assert 'raise ValueError("boom")' in text, "an unexpected error is logged with its traceback"


def test_expected_exceptions_are_logged_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = memory_app()

    @app.task(throws=(KeyError,))
    def lookup() -> None:
        raise KeyError("missing")

    worker = RunningWorker(app, pool="solo").start()
    try:
        result = lookup.delay()
        with pytest.raises(KeyError):
            result.get(timeout=5)
    finally:
        worker.stop()
    [line] = [r for r in caplog.records if "raised" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "Traceback" not in line.getMessage()


def test_prefork_runs_tasks_on_sqlite(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)

    def on_process_init(**_: object) -> None:
        (tmp_path / f"init-{os.getpid()}").touch()

    @app.task(name="tests.where")
    def where(x: int) -> list[int]:
        return [x, os.getpid()]

    signals.worker_process_init.connect(on_process_init)
    try:
        worker = RunningWorker(app, pool="prefork", concurrency=2).start()
        try:
            values = [where.delay(i).get(timeout=10) for i in range(6)]
        finally:
            assert worker.stop() == 0
    finally:
        signals.worker_process_init.disconnect(on_process_init)
    assert [v[0] for v in values] == list(range(6))
    children = {v[1] for v in values}
    assert os.getpid() not in children, "tasks ran in child processes"
    initialized = {int(p.name.split("-")[1]) for p in tmp_path.glob("init-*")}
    assert len(initialized) == 2, "worker_process_init in each child"
    assert children <= initialized


def test_hard_time_limit_fails_the_task(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)

    @app.task(time_limit=0.3)
    def sleepy() -> None:
        time.sleep(10)

    worker = RunningWorker(app, pool="prefork", concurrency=1).start()
    try:
        result = sleepy.delay()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=10)
    finally:
        worker.stop()
    assert app.transport.queue_length("celery") == 0, "a timed-out task is acknowledged"


def test_prefetch_is_bounded_by_multiplier_and_concurrency() -> None:
    app = memory_app()
    release = threading.Event()

    @app.task
    def wait() -> None:
        release.wait(10)

    worker = RunningWorker(app, pool="threads", concurrency=2, prefetch_multiplier=2).start()
    try:
        for _ in range(10):
            wait.delay()
        deadline = time.monotonic() + 5
        while app.transport.queue_length("celery") > 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # room for a worker that over-fetches to do so
        assert app.transport.queue_length("celery") == 6, "holds 2 x 2, runs 2 of them"
    finally:
        release.set()
        worker.stop()


def test_lifecycle_signals_fire_in_order() -> None:
    app = memory_app()
    seen: list[str] = []

    received: list[object] = []

    def record(signal: object = None, request: object = None, **_: object) -> None:
        seen.append(getattr(signal, "name", "?"))
        if request is not None:
            received.append(getattr(request, "id", None))

    hooks = [
        signals.worker_init,
        signals.worker_ready,
        signals.worker_shutting_down,
        signals.worker_shutdown,
        signals.task_received,
    ]
    for hook in hooks:
        hook.connect(record)
    try:

        @app.task
        def noop() -> None:
            return None

        worker = RunningWorker(app, pool="solo").start()
        result = noop.delay()
        result.get(timeout=5)
        worker.stop()
    finally:
        for hook in hooks:
            hook.disconnect(record)
    assert seen == [
        "worker_init",
        "worker_ready",
        "task_received",
        "worker_shutting_down",
        "worker_shutdown",
    ]
    assert received == [result.id], "task_received carries the request"


def test_the_workers_transport_gets_broker_use_ssl_as_its_ssl_option() -> None:
    """The worker opens its own transport: with the app's options, ``broker_use_ssl`` included
    (as the client's transport gets them), not ``broker_transport_options`` alone."""
    import uuid
    from collections.abc import Mapping

    from taskq import TaskQ, plugins
    from taskq.transports.memory import MemoryTransport
    from taskq_worker.connection import open_transport

    seen: list[dict[str, object]] = []

    class RecordingTransport(MemoryTransport):
        def __init__(self, url: str, options: Mapping[str, object]) -> None:
            seen.append(dict(options))
            super().__init__(f"memory://{url.partition('://')[2]}", {})

    scheme = f"recording{uuid.uuid4().hex[:8]}"
    plugins.TRANSPORTS.register(scheme, RecordingTransport)
    ssl = {"ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "required"}
    app = TaskQ(
        "tests",
        broker=f"{scheme}://x",
        broker_use_ssl=ssl,
        broker_transport_options={"visibility_timeout": 60},
    )
    transport = open_transport(app, threading.Event())
    transport.close()
    assert seen == [{"visibility_timeout": 60, "ssl": ssl}]
