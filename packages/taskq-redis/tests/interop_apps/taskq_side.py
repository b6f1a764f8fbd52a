"""The taskq app a real ``taskq worker`` runs in the interop tests (see interop_effects)."""

from __future__ import annotations

from typing import Any

from interop_effects import REDIS_URL, TRANSPORT_OPTIONS, collect, count, slow_count, tag, tsum

from taskq import Task, TaskQ

SIDE = "taskq"

app = TaskQ("interop_taskq", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_transport_options=TRANSPORT_OPTIONS,
)


@app.task(name="interop.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="interop.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="interop.tag")
def tag_task(acc: list[str], label: str) -> list[str]:
    return tag(acc, label, SIDE)


@app.task(name="interop.count")
def count_task(key: str, field: str) -> str:
    return count(key, field, SIDE)


@app.task(name="interop.slow_count")
def slow_count_task(key: str, field: str, seconds: float) -> str:
    return slow_count(key, field, seconds, SIDE)


@app.task(name="interop.collect")
def collect_task(parts: list[Any], key: str) -> dict[str, Any]:
    return collect(parts, key, SIDE)


@app.task(name="interop.tsum")
def tsum_task(values: list[Any]) -> int:
    return tsum(values)


@app.task(name="interop.replaced", bind=True)
def replaced(self: Task[..., Any], x: int) -> Any:
    """Replaced by ``interop.add(x, 100)`` on the queue it came from (a replacement is routed
    like any new task, and this worker's default queue is no test's)."""
    queue = self.request.delivery_info.get("routing_key")
    return self.replace(add.s(x, 100).set(queue=queue))


@app.task(name="interop.request_info", bind=True)
def request_info(self: Task[..., Any]) -> dict[str, Any]:
    """What this worker read from the message: the tests compare it with what was sent."""
    request = self.request
    return {
        "side": SIDE,
        "id": request.id,
        "eta": None if request.eta is None else request.eta.isoformat(),
        "priority": request.delivery_info.get("priority", request.priority),
        "headers": request.headers,
        "args": list(request.args),
        "kwargs": dict(request.kwargs),
    }
