"""Calling a failed task's errbacks, new style and old style, as Celery's worker does.

An errback whose task takes more than one argument (after the ones its signature already
binds), or ``*args``, is *new style*: it is called here, in the worker, as
``errback(request, exc, traceback)``. Any other errback, and one whose task is not registered
here, is *old style*: it is sent as a task with the failed task's id as its argument; several
go out as one group (Celery's ``_call_task_errbacks``).
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from taskq.canvas.signature import Signature, as_signature_list

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.context import Request
    from taskq.task import Task

__all__ = ["call_errbacks", "takes_request"]

logger = logging.getLogger("taskq.task")


def call_errbacks(app: TaskQ, request: Request, exc: BaseException, traceback: str | None) -> None:
    """Run ``request.errbacks`` for the failure ``exc`` of the task ``request`` describes."""
    from taskq.canvas.group import group

    old_style: list[Signature[Any, Any]] = []
    for errback in as_signature_list(request.errbacks, app) or []:
        task = app.tasks.get(errback.task)
        if task is None or not takes_request(task, errback):
            old_style.append(errback)
            continue
        try:
            errback(request, exc, traceback)
        except Exception:
            logger.exception("errback %s raised", errback.task)
    if not old_style:
        return
    task_id = request.id or ""
    errbacks = group(old_style, app=app)
    root_id = request.root_id or task_id
    if request.is_eager or app.conf.task_always_eager:
        errbacks.apply((task_id,), parent_id=task_id, root_id=root_id)
    else:
        errbacks.apply_async((task_id,), parent_id=task_id, root_id=root_id)


def takes_request(task: Task[Any, Any], errback: Signature[Any, Any]) -> bool:
    """Whether ``errback`` is new style: its task still takes more than one positional
    argument once the signature's own are bound, or takes ``*args``."""
    try:
        parameters = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not errback.immutable:
        bound = {p.name for p in positional[: len(errback.args)]} | set(errback.kwargs)
        positional = [p for p in positional if p.name not in bound]
    return len(positional) > 1
