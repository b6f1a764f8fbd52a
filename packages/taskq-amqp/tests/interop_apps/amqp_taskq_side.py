"""The taskq app a real ``taskq worker`` runs in the AMQP interop tests."""

from __future__ import annotations

from typing import Any

from amqp_interop_effects import AMQP_URL, REDIS_URL, count, queue_dicts, slow_count, tag

from taskq import Task, TaskQ

SIDE = "taskq"

app = TaskQ("interop_taskq", broker=AMQP_URL, backend=REDIS_URL)
app.conf.update(worker_prefetch_multiplier=1, task_queues=queue_dicts())


@app.task(name="interop.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="interop.tag")
def tag_task(acc: list[str], label: str) -> list[str]:
    return tag(acc, label, SIDE)


@app.task(name="interop.count")
def count_task(key: str, field: str) -> str:
    return count(key, field, SIDE)


@app.task(name="interop.slow_count")
def slow_count_task(key: str, field: str, seconds: float) -> str:
    return slow_count(key, field, seconds, SIDE)


@app.task(name="interop.request_info", bind=True)
def request_info(self: Task[..., Any]) -> dict[str, Any]:
    request = self.request
    return {
        "side": SIDE,
        "id": request.id,
        "eta": None if request.eta is None else request.eta.isoformat(),
        "priority": request.delivery_info.get("priority", request.priority),
        "headers": request.headers,
    }
