"""Shared fixtures: a Celery app on kombu's in-memory transport, for interop tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def celery_app() -> Iterator[Any]:
    """A real Celery app whose broker is kombu's in-process memory transport."""
    celery = pytest.importorskip("celery")
    app = celery.Celery("proj", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    yield app
    _drain()


@pytest.fixture
def drain_memory_queues() -> Iterator[Callable[[], list[tuple[str, dict[str, Any]]]]]:
    """A function taking every message kombu's memory transport holds; queues start empty."""
    _drain()
    yield _drain
    _drain()


def _drain() -> list[tuple[str, dict[str, Any]]]:
    """Take every message kombu's memory transport holds, as ``(queue, envelope dict)``."""
    from kombu.transport import memory

    taken: list[tuple[str, dict[str, Any]]] = []
    for name, queue in list(memory.Channel.queues.items()):
        while not queue.empty():
            taken.append((name, queue.get()))
    return taken


@pytest.fixture(scope="session")
def celery_worker_app() -> Iterator[Any]:
    """A real Celery worker (solo pool, in a thread) on the memory transport."""
    celery = pytest.importorskip("celery")
    from celery.contrib.testing.worker import start_worker

    app = celery.Celery("interop", broker="memory://", backend="cache+memory://",
                        set_as_current=False)  # fmt: skip
    # Its own queue, so it never takes messages other tests inspect.
    app.conf.task_default_queue = "interop"
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    @app.task(name="interop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="interop.fail")
    def fail(reason: str) -> None:
        raise LookupError(reason)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):  # pyright: ignore[reportGeneralTypeIssues]
        yield app
