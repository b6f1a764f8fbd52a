"""How the benchmark drives each system from the client side, one class per system.

Each client imports its app module (which reads ``BENCH_REDIS_URL``), so build a client only
after that variable is set. The worker command lines are the systems' own CLIs with their default
pool at ``concurrency`` processes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from celery import Task as CeleryTask

LOG_LEVEL = "WARNING"


class Client(Protocol):
    name: str

    def publish(self, count: int) -> None:
        """``count`` calls of the increment task's ``delay()`` (or its equivalent)."""

    def publish_batch(self, count: int, chunk: int) -> str:
        """``count`` increments published as groups of ``chunk``; returns how that was done."""
        ...

    def purge(self) -> None:
        """Drop every queued message (its own API, so its own bookkeeping stays right)."""

    def round_trip(self) -> None:
        """Call the increment task that stores its result and wait for the result."""

    def worker_argv(self, concurrency: int) -> list[str]: ...

    def close(self) -> None: ...


class CeleryClient:
    name = "Celery"

    def __init__(self) -> None:
        from peers import celery_app

        self.module = celery_app
        # Celery's decorator is untyped: say what it returned.
        self.increment = cast("CeleryTask", celery_app.increment)
        self.increment_with_result = cast("CeleryTask", celery_app.increment_with_result)

    def publish(self, count: int) -> None:
        delay = self.increment.delay
        for _ in range(count):
            delay()

    def publish_batch(self, count: int, chunk: int) -> str:
        from celery import group

        signature = self.increment.s
        for start in range(0, count, chunk):
            group(signature() for _ in range(min(chunk, count - start))).apply_async()
        # Seen with MONITOR on Redis: an LPUSH per task, and a SUBSCRIBE to each task's result
        # channel for the GroupResult, even though the task ignores its result.
        return "group(...).apply_async(): a publish and a result SUBSCRIBE per task"

    def purge(self) -> None:
        self.module.app.control.purge()

    def round_trip(self) -> None:
        self.increment_with_result.delay().get(timeout=30)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "peers.celery_app", "worker",
                "-P", "prefork", "-c", str(concurrency), "--loglevel", LOG_LEVEL]  # fmt: skip

    def close(self) -> None:
        self.module.app.close()


class DramatiqClient:
    name = "Dramatiq"

    def __init__(self) -> None:
        from peers import dramatiq_app

        self.module = dramatiq_app

    def publish(self, count: int) -> None:
        send = self.module.increment.send
        for _ in range(count):
            send()

    def publish_batch(self, count: int, chunk: int) -> str:
        import dramatiq

        actor = self.module.increment
        for start in range(0, count, chunk):
            dramatiq.group(actor.message() for _ in range(min(chunk, count - start))).run()
        return "group(...).run(): no batched enqueue in Dramatiq, one enqueue per task"

    def purge(self) -> None:
        self.module.broker.flush_all()

    def round_trip(self) -> None:
        message = self.module.increment_with_result.send()
        message.get_result(block=True, timeout=30_000)

    def worker_argv(self, concurrency: int) -> list[str]:
        # Dramatiq has no log-level option; its INFO start-up lines go to the log file.
        return [sys.executable, "-m", "dramatiq", "peers.dramatiq_app",
                "--processes", str(concurrency)]  # fmt: skip

    def close(self) -> None:
        self.module.broker.close()


class TaskqClient:
    name = "taskq"

    def __init__(self) -> None:
        from peers import taskq_app

        self.module = taskq_app

    def publish(self, count: int) -> None:
        delay = self.module.increment.delay
        for _ in range(count):
            delay()

    def publish_batch(self, count: int, chunk: int) -> str:
        from taskq import group

        signature = self.module.increment.s
        for start in range(0, count, chunk):
            group(signature() for _ in range(min(chunk, count - start))).apply_async()
        return "group(...).apply_async(): one transport.publish_many per group"

    def send_many(self, count: int, chunk: int) -> str:
        """The million's publishing: ``Publisher.send_many``, the batch API under a group,
        without the canvas (ids frozen, members copied) a group adds per task."""
        send_many = self.module.app.publisher.send_many
        item = (self.module.increment.name, (), {}, {})  # the task's own ignore_result applies
        for start in range(0, count, chunk):
            send_many([item] * min(chunk, count - start))
        return "Publisher.send_many(...): one transport.publish_many per batch"

    def purge(self) -> None:
        app = self.module.app
        app.transport.purge(app.conf.task_default_queue)

    def round_trip(self) -> None:
        self.module.increment_with_result.delay().get(timeout=30)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "taskq_cli", "-A", "peers.taskq_app", "worker",
                "-P", "prefork", "-c", str(concurrency), "-l", LOG_LEVEL]  # fmt: skip

    def close(self) -> None:
        self.module.app.close()


CLIENTS: dict[str, type[Client]] = {
    "taskq": TaskqClient,
    "celery": CeleryClient,
    "dramatiq": DramatiqClient,
}
