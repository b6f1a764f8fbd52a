"""What is running in this thread: the current task's request, and the current app.

``self.request`` inside a task, ``parent_id``/``root_id`` on tasks sent from inside a task,
and the "never call result.get() within a task" check all read this thread's stack.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = [
    "Request",
    "push_request",
    "pop_request",
    "current_request",
    "current_app",
    "set_default_app",
]


@dataclass(slots=True)
class Request:
    """``self.request``: the message behind the run, as Celery's ``Context`` exposes it."""

    id: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list[Any])
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    retries: int = 0
    is_eager: bool = False
    eta: datetime | None = None
    expires: datetime | None = None
    group: str | None = None
    group_index: int | None = None
    chord: Any = None
    chain: Any = None
    callbacks: Any = None
    errbacks: Any = None
    root_id: str | None = None
    parent_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    origin: str | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict[str, Any])
    timelimit: tuple[float | None, float | None] = (None, None)
    headers: dict[str, Any] = field(default_factory=dict[str, Any])
    ignore_result: bool = False
    replaced_task_nesting: int = 0
    stamps: dict[str, Any] = field(default_factory=dict[str, Any])
    shadow: str | None = None
    priority: int | None = None
    #: Results of what this run sent (subtasks, callbacks, the next chain step), stored in its
    #: meta's ``children`` so ``AsyncResult.children`` can follow the workflow.
    children: list[Any] = field(default_factory=list[Any])

    @property
    def called_directly(self) -> bool:
        """True when the task function was called like a function, not from a message."""
        return self.id is None


class _State(threading.local):
    def __init__(self) -> None:
        self.requests: list[Request] = []


_state = _State()
_default_app: list[TaskQ] = []


def push_request(request: Request) -> None:
    _state.requests.append(request)


def pop_request() -> None:
    _state.requests.pop()


def current_request() -> Request | None:
    """The request of the task running in this thread, if any."""
    requests = _state.requests
    return requests[-1] if requests else None


def set_default_app(app: TaskQ) -> None:
    _default_app[:] = [app]


def current_app() -> TaskQ:
    """The app ``@shared_task`` tasks and bare ``AsyncResult(id)`` use: the last one made."""
    if not _default_app:
        from taskq.app import TaskQ

        TaskQ("default")  # sets itself as default
    return _default_app[0]
