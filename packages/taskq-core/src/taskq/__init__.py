"""taskq: a distributed task queue for Python that speaks Celery's protocol.

``from taskq import TaskQ`` is ``from celery import Celery``: tasks, settings, the calling API,
results and canvas keep their names. With no broker configured, tasks go through a SQLite file
in the working directory, so nothing needs to be installed to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq.app import TaskQ, shared_task
from taskq.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    xmap,
    xstarmap,
)
from taskq.context import current_app
from taskq.exceptions import (
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotRegistered,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
)
from taskq.task import Task

if TYPE_CHECKING:
    from taskq.result import AsyncResult, EagerResult, GroupResult, ResultSet
from taskq_protocol import states

__version__ = "0.1.0"

#: Celery's name for the app class, for code that says ``Celery(...)``.
Celery = TaskQ

__all__ = [
    "TaskQ",
    "Celery",
    "Task",
    "shared_task",
    "current_app",
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "Signature",
    "signature",
    "maybe_signature",
    "chain",
    "group",
    "chord",
    "chunks",
    "xmap",
    "xstarmap",
    "states",
    "Retry",
    "Ignore",
    "Reject",
    "MaxRetriesExceededError",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "ImproperlyConfigured",
    "NotRegistered",
]


_LAZY = {"AsyncResult", "EagerResult", "GroupResult", "ResultSet"}


def __getattr__(name: str) -> Any:
    # Result classes load on first use: a worker or client that never reads a result never
    # imports them, and taskq.result can import the app without a cycle.
    if name in _LAZY:
        from taskq import result

        return getattr(result, name)
    raise AttributeError(f"module 'taskq' has no attribute {name!r}")
