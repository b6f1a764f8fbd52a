"""The exceptions taskq raises and tasks raise, named as Celery names them.

Code written for Celery catches ``celery.exceptions.SoftTimeLimitExceeded``, raises
``Reject`` or ``Ignore``, and checks for ``MaxRetriesExceededError``; the same names live here
so that ``from celery.exceptions import X`` becomes ``from taskq.exceptions import X``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "TaskQError",
    "ImproperlyConfigured",
    "NotRegistered",
    "PluginNotFound",
    "TaskError",
    "Retry",
    "Ignore",
    "Reject",
    "MaxRetriesExceededError",
    "TimeoutError",
    "TaskRevokedError",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "WorkerLostError",
    "ChordError",
    "QueueNotFound",
]


class TaskQError(Exception):
    """Base of taskq's own errors."""


class ImproperlyConfigured(TaskQError, ValueError):
    """A setting is wrong. The message names the setting and says how to fix it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, self.problem))

    def again(self) -> ImproperlyConfigured:
        """A copy to raise in another thread: one exception object raised in several
        threads at once would collect all their tracebacks."""
        copy = type(self)(self.setting, self.problem)
        copy.__cause__ = self.__cause__
        return copy


class NotRegistered(TaskQError, KeyError):
    """No task of that name is registered in this app."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class PluginNotFound(TaskQError, LookupError):
    """No transport, backend, pool, serializer or compressor is installed under that name."""


class QueueNotFound(TaskQError, KeyError):
    """A task was routed to a queue that ``task_queues`` does not define, and
    ``task_create_missing_queues`` is off."""


class TaskError(TaskQError):
    """Base of the exceptions a task raises to steer its own execution."""


class Retry(TaskError):
    """Raised by ``Task.retry()``: the task was sent again and this run ends here."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        #: The signature that runs the task again (eager runs apply it in place).
        self.sig = sig
        super().__init__(message or self.humanize())

    def humanize(self) -> str:
        if isinstance(self.when, datetime):
            return f"Retry at {self.when.isoformat()}"
        if self.when is not None:
            return f"Retry in {self.when}s"
        return "Retry"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.exc, self.when, self.is_eager))


class Ignore(TaskError):
    """Raised by a task to end without storing any state (IGNORED)."""


class Reject(TaskError):
    """Raised by a task to reject its message: requeue it, or send it to the dead letters."""

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class MaxRetriesExceededError(TaskError):
    """``retry()`` was called once more than ``max_retries`` allows."""


class TimeoutError(TaskQError):
    """``AsyncResult.get(timeout=...)`` ran out of time before the result was ready."""


class TaskRevokedError(TaskQError):
    """The task was revoked, expired or terminated (the REVOKED state's result)."""


class SoftTimeLimitExceeded(TaskQError):
    """Raised inside a task when its soft time limit passes, so it can clean up."""


class TimeLimitExceeded(TaskQError):
    """The hard time limit passed and the task was stopped."""


class WorkerLostError(TaskQError):
    """The process running the task died (killed, out of memory, segfault)."""


class ChordError(TaskQError):
    """A chord's header task failed, so its body cannot run. Names the task that failed."""
