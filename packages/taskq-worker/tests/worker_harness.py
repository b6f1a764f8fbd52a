"""Running real workers in tests: a worker on a thread, started until ready, stopped after.

Tests import this module by path (``sys.path``), as the pool tests import theirs. Apps get a
private broker: ``memory://<unique>`` for in-process pools, a SQLite file for prefork (its
children cannot see the parent's memory).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from taskq import TaskQ, signals
from taskq.contracts import Delivery, Transport
from taskq_protocol import Envelope, TaskMessage, jsoncodec
from taskq_worker import Worker

__all__ = ["RunningWorker", "memory_app", "sqlite_app", "make_envelope", "dead_letters"]


def memory_app(**settings: Any) -> TaskQ:
    """An app on a fresh in-process broker and result store, logging to pytest's capture."""
    name = uuid.uuid4().hex
    settings.setdefault("worker_hijack_root_logger", False)
    return TaskQ("tests", broker=f"memory://{name}", backend=f"memory://{name}", **settings)


def sqlite_app(directory: Path, **settings: Any) -> TaskQ:
    """An app whose broker and results are one SQLite file in ``directory``."""
    url = f"sqlite:///{directory / 'taskq.sqlite3'}"
    settings.setdefault("worker_hijack_root_logger", False)
    settings.setdefault("broker_transport_options", {"polling_interval": 0.02})
    return TaskQ("tests", broker=url, backend=url, **settings)


class RunningWorker:
    """A :class:`Worker` on its own thread."""

    def __init__(self, app: TaskQ, **options: Any) -> None:
        options.setdefault("hostname", f"w-{uuid.uuid4().hex[:8]}@test")
        self.worker = Worker(app, **options)
        self.exitcode: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-worker", daemon=True)

    def _run(self) -> None:
        self.exitcode = self.worker.start()
        self._ready.set()  # a worker that failed to start is "ready" to be looked at

    def _on_ready(self, sender: object = None, **_: Any) -> None:
        if sender is self.worker:
            self._ready.set()

    def start(self, timeout: float = 10.0) -> RunningWorker:
        signals.worker_ready.connect(self._on_ready)
        try:
            self._thread.start()
            if not self._ready.wait(timeout):
                raise AssertionError(f"worker not ready within {timeout}s")
        finally:
            signals.worker_ready.disconnect(self._on_ready)
        return self

    def stop(self, *, cold: bool = False, timeout: float = 10.0) -> int | None:
        self.worker.stop(cold=cold)
        return self.join(timeout)

    def join(self, timeout: float = 10.0) -> int | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"worker did not stop within {timeout}s")
        return self.exitcode

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def make_envelope(
    task: str,
    args: list[Any] | None = None,
    *,
    task_id: str | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, Any] | None = None,
    queue: str = "celery",
) -> Envelope:
    """A task message as a client publishes it; ``body`` replaces the serialized body."""
    message = TaskMessage.create(task, args or [], {}, id=task_id or str(uuid.uuid4()))
    msg_headers, properties, payload = message.encode()
    msg_headers.update(headers or {})
    return Envelope.create(
        jsoncodec.dumps(payload) if body is None else body,
        content_type=content_type,
        content_encoding="utf-8",
        headers=msg_headers,
        properties=properties,
        routing_key=queue,
    )


def dead_letters(transport: Transport, queue: str = "celery", count: int = 1) -> list[Delivery]:
    """Take ``count`` messages from ``queue``'s dead-letter queue (acked), failing if fewer."""
    taken: list[Delivery] = []
    while len(taken) < count:
        batch = transport.fetch([f"{queue}.dlq"], count - len(taken), 5.0)
        if not batch:
            break
        transport.ack(batch)
        taken += batch
    assert len(taken) == count, f"expected {count} dead letters, got {len(taken)}"
    return taken
