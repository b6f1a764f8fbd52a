"""Celery's built-in canvas tasks, registered under Celery's names with every app.

A Celery client's ``add.map(...)``, ``add.starmap(...)`` and ``add.chunks(...)`` publish
messages for ``celery.map`` and ``celery.starmap``; ``Task.replace`` with a group appends
``celery.accumulate``. A taskq worker runs them because every app registers them, as
Celery's does (``celery/app/builtins.py``; same names, arguments and results).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskq.canvas.maps import chunks
from taskq.canvas.signature import signature

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["register_builtins", "BUILTIN_TASKS"]

#: The names this module registers.
BUILTIN_TASKS = ("celery.map", "celery.starmap", "celery.chunks", "celery.accumulate")


def register_builtins(app: TaskQ) -> None:
    """Register the built-in canvas tasks with ``app``."""

    def xmap(task: Mapping[str, Any], it: list[Any]) -> list[Any]:
        # Celery calls the task's function, not the signature: its partial args are unused.
        function = signature(task, app=app).type
        return [function(item) for item in it]

    def xstarmap(task: Mapping[str, Any], it: list[Any]) -> list[Any]:
        function = signature(task, app=app).type
        return [function(*item) for item in it]

    def chunks_task(task: Mapping[str, Any], it: list[Any], n: int) -> list[Any]:
        # Sends the parts as a group. Celery returns the GroupResult itself, which no
        # serializer can store; its result tuple says the same and can be stored.
        return chunks.apply_chunks(task, it, n, app=app).as_tuple()

    def accumulate(self: Any, *args: Any, **kwargs: Any) -> Any:
        index = kwargs.get("index")
        return args[index] if index is not None else args

    app.task(name="celery.map")(xmap)
    app.task(name="celery.starmap")(xstarmap)
    app.task(name="celery.chunks")(chunks_task)
    app.task(name="celery.accumulate", bind=True)(accumulate)
