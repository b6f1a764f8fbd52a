"""The log lines that say how a task ended, in Celery's words, where the task ran.

Success, ignore, reject and expiry are read from the :class:`~taskq.execution.Execution` the
run returns. Failures and retries come from the ``task_failure`` and ``task_retry`` signals,
the only place the exception and its traceback are still at hand; a failure whose exception
the task declares in ``throws`` is expected and logged without the traceback. In a prefork
child these lines are written by the child, as Celery's are.
"""

from __future__ import annotations

import logging
from typing import Any

from taskq import signals
from taskq.exceptions import Retry
from taskq.execution import Execution
from taskq_protocol import states
from taskq_protocol.message import safe_repr

__all__ = ["log_execution", "wants_summary", "connect", "disconnect"]

logger = logging.getLogger("taskq_worker.trace")

_FAILURE_UID = "taskq_worker.tasklog.failure"
_RETRY_UID = "taskq_worker.tasklog.retry"


def wants_summary() -> bool:
    """Whether :func:`log_execution` writes the success line that shows the return value's
    repr; when it does not, the run need not build that repr."""
    return logger.isEnabledFor(logging.INFO)


def log_execution(execution: Execution) -> None:
    """One line for a run that did not fail or retry (those are logged by the receivers)."""
    state = execution.state
    if state == states.SUCCESS:
        logger.info(
            "Task %s[%s] succeeded in %.3fs: %s",
            execution.name,
            execution.task_id,
            execution.runtime,
            execution.summary,
        )
    elif state == states.IGNORED:
        logger.info("Task %s[%s] ignored", execution.name, execution.task_id)
    elif state == states.REJECTED:
        logger.warning(
            "Task %s[%s] rejected: %s", execution.name, execution.task_id, execution.reason
        )
    elif state == states.REVOKED:
        logger.warning(
            "Task %s[%s] revoked: %s", execution.name, execution.task_id, execution.reason
        )


def _on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    traceback: object = None,
    einfo: str | None = None,
    **_: Any,
) -> None:
    name = getattr(sender, "name", None) or "???"
    throws: tuple[type[BaseException], ...] = getattr(sender, "throws", ())
    shown = safe_repr(exception, 1024)
    if throws and isinstance(exception, throws):
        logger.info("Task %s[%s] raised %s", name, task_id, shown)
    elif traceback is None or not einfo:
        # Recorded for a task that could not report itself (time limit, lost process).
        logger.error("Task %s[%s] raised %s", name, task_id, shown)
    else:
        logger.error("Task %s[%s] raised %s\n%s", name, task_id, shown, einfo.rstrip())


def _on_retry(sender: Any = None, request: Any = None, reason: object = None, **_: Any) -> None:
    name = getattr(sender, "name", None) or "???"
    task_id = getattr(request, "id", None)
    text = str(reason) if isinstance(reason, Retry) else f"Retry: {safe_repr(reason, 1024)}"
    logger.info("Task %s[%s] retry: %s", name, task_id, text)


def connect() -> None:
    """Start logging failures and retries (idempotent: the receivers have fixed uids)."""
    signals.task_failure.connect(weak=False, dispatch_uid=_FAILURE_UID)(_on_failure)
    signals.task_retry.connect(weak=False, dispatch_uid=_RETRY_UID)(_on_retry)


def disconnect() -> None:
    signals.task_failure.disconnect(dispatch_uid=_FAILURE_UID)
    signals.task_retry.disconnect(dispatch_uid=_RETRY_UID)
