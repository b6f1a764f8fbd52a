"""The Celery app a real ``celery worker`` runs in the AMQP interop tests."""

from __future__ import annotations

from typing import Any

from amqp_interop_effects import AMQP_URL, REDIS_URL, count, queue_dicts, slow_count, tag
from celery import Celery
from kombu.entity import Exchange, Queue

SIDE = "celery"

app = Celery("interop_celery", broker=AMQP_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_queues=[
        Queue(
            q["name"],
            Exchange(q["exchange"], type=q["exchange_type"]),
            routing_key=q["routing_key"],
            queue_arguments=q["queue_arguments"],
        )
        for q in queue_dicts()
    ],
)


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
def request_info(self: Any) -> dict[str, Any]:
    request = self.request
    delivery_info = request.delivery_info or {}
    return {
        "side": SIDE,
        "id": request.id,
        "eta": request.eta,
        "priority": delivery_info.get("priority"),
        "headers": request.headers or {},
    }
