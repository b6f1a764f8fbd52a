"""Worker logging in Celery's shape, with the task's name and id on every task line.

Two formats, as in Celery: worker lines (``[2026-11-24 05:00:00,123: INFO/MainProcess] Task
proj.add[<id>] received``) and *task* lines, logged by task code through
:func:`get_task_logger`, which carry the running task's name and id
(``... proj.add[<id>]: charging the card``). The task comes from this thread's request stack
(:func:`taskq.context.current_request`), so it is right in the worker's threads and in prefork
children alike, with nothing passed around.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from taskq import signals
from taskq.context import current_request
from taskq.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from taskq.config import Settings

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_TASK_FORMAT",
    "TaskContextFilter",
    "WorkerFormatter",
    "get_task_logger",
    "parse_level",
    "setup_logging",
]

#: Celery's ``worker_log_format``.
DEFAULT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
#: Celery's ``worker_task_log_format``.
DEFAULT_TASK_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)
#: What a record outside any task shows for the task fields, as in Celery.
NO_TASK = "???"


def _add_task_fields(record: logging.LogRecord) -> None:
    if hasattr(record, "task_id"):
        return
    request = current_request()
    if request is None or request.id is None:
        record.task_id = record.task_name = NO_TASK
    else:
        record.task_id = request.id
        record.task_name = request.task or NO_TASK


class TaskContextFilter(logging.Filter):
    """Adds ``task_id`` and ``task_name`` to every record (``???`` outside a task), so any
    format may name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        _add_task_fields(record)
        return True


class _TaskRecords(logging.Filter):
    """Marks the records of a task logger, for :class:`WorkerFormatter` to give them the
    task format. A logger's own filters see only the records it creates, never its
    children's or its parents', which is exactly the scope wanted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.task_log = True
        _add_task_fields(record)
        return True


_TASK_RECORDS = _TaskRecords()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task code whose lines carry the running task's name and id.

    ``logger = get_task_logger(__name__)`` at module level, as with Celery's helper of the
    same name; outside a task its lines show ``???`` for both.
    """
    logger = logging.getLogger(name)
    if _TASK_RECORDS not in logger.filters:
        logger.addFilter(_TASK_RECORDS)
    return logger


class WorkerFormatter(logging.Formatter):
    """Formats task-logger records with ``task_format`` and everything else with ``fmt``."""

    def __init__(self, fmt: str = DEFAULT_FORMAT, task_format: str = DEFAULT_TASK_FORMAT) -> None:
        super().__init__(fmt)
        self._task = logging.Formatter(task_format)

    def format(self, record: logging.LogRecord) -> str:
        _add_task_fields(record)
        if getattr(record, "task_log", False):
            return self._task.format(record)
        return super().format(record)


_LEVELS = {
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.FATAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


def parse_level(level: str | int) -> int:
    """``"INFO"``, ``"info"`` or ``20`` as a logging level; ImproperlyConfigured otherwise."""
    if isinstance(level, int) and not isinstance(level, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
        return level
    if isinstance(level, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        found = _LEVELS.get(level.strip().upper())
        if found is not None:
            return found
    raise ImproperlyConfigured(
        "loglevel", f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}"
    )


# The handler the last setup_logging() installed, replaced (not duplicated) by the next.
_installed: list[logging.Handler] = []


def setup_logging(level: int, logfile: str | None, conf: Settings) -> None:
    """Configure logging for a worker, as Celery's worker does.

    A ``setup_logging`` signal receiver takes over entirely. Otherwise, with
    ``worker_hijack_root_logger`` (the default) the root logger's handlers are replaced by one
    writing to ``logfile`` (stderr when None) in the worker formats; without it, logging is
    left as the application set it up.
    """
    if signals.setup_logging.receivers:
        signals.setup_logging.send(
            sender=None, loglevel=level, logfile=logfile, format=None, colorize=False
        )
        return
    root = logging.getLogger()
    if conf.worker_hijack_root_logger:
        handler: logging.Handler = (
            logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
        )
        handler.setFormatter(
            WorkerFormatter(
                conf.worker_log_format or DEFAULT_FORMAT,
                conf.worker_task_log_format or DEFAULT_TASK_FORMAT,
            )
        )
        handler.addFilter(TaskContextFilter())
        for old in list(root.handlers):
            root.removeHandler(old)
            if old in _installed:
                old.close()
        _installed[:] = [handler]
        root.addHandler(handler)
        root.setLevel(level)
    else:
        logging.getLogger("taskq").setLevel(level)
        logging.getLogger("taskq_worker").setLevel(level)
    signals.after_setup_logger.send(
        sender=None, logger=root, loglevel=level, logfile=logfile, format=None, colorize=False
    )
