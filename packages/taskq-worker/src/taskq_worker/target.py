"""What a pool runs for one task, wherever it runs it.

:func:`run_task` is a module-level function with plain arguments, so the prefork pool can
pickle it into a child. The app it runs against cannot travel that way: each worker registers
its app here, under a key, *before* its pool starts, and forked children inherit the registry.
Several workers can therefore share one process (tests do) without seeing each other's app.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.execution import DEAD_LETTER, STOPPED_BY_POOL, Execution, execute
from taskq_protocol import states
from taskq_protocol.message import safe_repr
from taskq_worker import tasklog
from taskq_worker.decoding import Received, Undeliverable

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["install", "uninstall", "run_task", "init_process"]

logger = logging.getLogger("taskq_worker.trace")

_workers: dict[int, tuple[TaskQ, str]] = {}


def install(key: int, app: TaskQ, hostname: str) -> None:
    """Make ``app`` the one :func:`run_task` uses for worker ``key`` in this process (and in
    the children forked after this)."""
    if not _workers:
        tasklog.connect()
    _workers[key] = (app, hostname)


def uninstall(key: int) -> None:
    _workers.pop(key, None)
    if not _workers:
        tasklog.disconnect()


def run_task(key: int, received: Received, delivery_info: dict[str, Any]) -> Execution:
    """Run one task message and say how to settle it (the pool's ``PoolJob.target``).

    The message is built here, where the task runs (see :class:`Received`); one that cannot
    be is dead-lettered with the reason, as the consumer does with what it cannot read.
    """
    try:
        app, hostname = _workers[key]
    except KeyError:
        raise RuntimeError(
            f"no taskq worker {key} in process {os.getpid()}: a pool must start (fork) after "
            "the worker installed its app"
        ) from None
    try:
        message = received.message
    except Undeliverable as exc:
        return Execution(received.id, received.name, states.REJECTED, DEAD_LETTER, str(exc))
    try:
        execution = execute(
            app,
            message,
            hostname=hostname,
            delivery_info=delivery_info,
            summarize=tasklog.wants_summary(),
        )
        _confirm_published(app)
    except STOPPED_BY_POOL:
        raise  # the pool stopped the task; it reports the timeout or termination itself
    except Exception as exc:
        # The task's outcome could not be stored, chained or signalled: not the task's fault,
        # and not safe to ack silently, so the message goes to the dead letters.
        logger.exception("Task %s[%s]: internal error", message.name, message.id)
        signals.task_internal_error.send(
            sender=app.tasks.get(message.name),
            task_id=message.id,
            args=message.args,
            kwargs=message.kwargs,
            request=None,
            exception=exc,
            traceback=exc.__traceback__,
            einfo=None,
        )
        return Execution(
            message.id,
            message.name,
            states.FAILURE,
            DEAD_LETTER,
            f"internal error: {safe_repr(exc, 256)}",
        )
    tasklog.log_execution(execution)
    return execution


def _confirm_published(app: TaskQ) -> None:
    """Wait until the broker took what the task published (the next step of a chain, a
    retry, a callback) when the transport sends without waiting for that (taskq-redis,
    taskq-amqp): the worker acknowledges the task's message next, which must not overtake a
    publish the broker then refuses. Raises what the transport raises for a refused one.
    (``flush()`` is the optional part of the Transport contract: see its docstring.)"""
    flush = getattr(app.transport, "flush", None)
    if flush is not None:
        flush()


def init_process() -> None:
    """The pool's initializer, run in each new child process: names the process for the
    log lines it writes (``INFO/ForkPoolWorker-<pid>``, as Celery's children show themselves)
    and fires ``worker_process_init``."""
    import multiprocessing

    multiprocessing.current_process().name = f"ForkPoolWorker-{os.getpid()}"
    signals.worker_process_init.send(sender=None)
