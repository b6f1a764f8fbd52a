"""Checked by pyright in test_core_typing.py; lines marked ``# error`` must be reported."""

from __future__ import annotations

from typing import Any

from taskq import TaskQ

app = TaskQ("typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=2)
def bound(self: Any, text: str) -> str:
    return text.upper()


ok_int: int = add(1, 2)
ok_result = add.delay(1, 2)
ok_upper: str = bound.delay("a").get()
ok_sum: int = add.apply_async((1, 2)).get()  # apply_async takes Celery's tuple: not checked

add.delay(1, "x")  # error
add.delay(1)  # error
bound.delay(3)  # error
wrong: str = add.delay(1, 2).get()  # error
