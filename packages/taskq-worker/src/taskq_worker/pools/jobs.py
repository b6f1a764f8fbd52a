"""What every pool does with a job: check it, and say how it ended as a :class:`JobOutcome`.

The target a worker hands a pool catches the task's own errors and returns a small value, so an
exception that escapes it is a bug in the worker, not in the task. Pools report such a job as
``lost``, with the traceback as its description, and log it: the task's fate is unknown (it
may have stored a result or not), exactly as when the process running it dies, and the worker
already knows how to handle that (``task_reject_on_worker_lost``).
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import dataclass
from typing import Any

from taskq.contracts import JobOutcome, PoolJob

__all__ = [
    "Fate",
    "Ran",
    "check_job",
    "escaped",
    "job_outcome",
    "limits",
    "never_started",
    "timed_out",
]

logger = logging.getLogger("taskq_worker.pools")

#: How a pool stopped a job on purpose: ``(outcome, description)``, e.g. ``("timeout", ...)``.
Fate = tuple[str, str]


@dataclass(slots=True)
class Ran:
    """What calling a job's target gave: its return value, or the exception that escaped."""

    value: Any = None
    error: BaseException | None = None


def check_job(job: PoolJob) -> None:
    """Refuse a malformed job in ``apply``, before it is accepted (and owed an outcome)."""
    if not isinstance(job, PoolJob):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"apply() takes a PoolJob, got {type(job).__name__}")
    if not isinstance(job.task_id, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"PoolJob.task_id must be a str, got {type(job.task_id).__name__}")
    if not callable(job.target):
        raise TypeError(f"PoolJob.target must be callable, got {type(job.target).__name__}")
    if not isinstance(job.args, tuple):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"PoolJob.args must be a tuple, got {type(job.args).__name__}")
    for name in ("soft_time_limit", "time_limit"):
        limit: object = getattr(job, name)
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise TypeError(f"PoolJob.{name} must be seconds or None, got {limit!r}")
        if not (limit > 0 and math.isfinite(limit)):
            raise ValueError(f"PoolJob.{name} must be a positive number of seconds, got {limit!r}")


def limits(job: PoolJob) -> tuple[float | None, float | None]:
    """``(soft, hard)`` in seconds; a soft limit at or past the hard one never fires."""
    soft, hard = job.soft_time_limit, job.time_limit
    if soft is not None and hard is not None and soft >= hard:
        soft = None
    return soft, hard


def timed_out(job: PoolJob) -> Fate:
    return ("timeout", f"TimeLimitExceeded: the hard time limit ({job.time_limit:g}s) passed")


def never_started(job: PoolJob) -> JobOutcome:
    """A queued job the pool dropped because it stopped first."""
    return JobOutcome(job.task_id, "lost", "the pool stopped before the job started")


def escaped(task_id: str, error: BaseException) -> str:
    """Log an exception that escaped a target, and describe it for the ``lost`` outcome."""
    logger.error(
        "the pool's target raised instead of returning (a worker bug), job %s",
        task_id,
        exc_info=error,
    )
    return "the target raised instead of returning:\n" + "".join(
        traceback.format_exception(type(error), error, error.__traceback__)
    )


def job_outcome(job: PoolJob, ran: Ran, fate: Fate | None) -> JobOutcome:
    """The outcome of a job that ran in this process: its fate first, then how it returned."""
    if fate is not None:
        return JobOutcome(job.task_id, *fate)
    if ran.error is not None:
        return JobOutcome(job.task_id, "lost", escaped(job.task_id, ran.error))
    return JobOutcome(job.task_id, "done", ran.value)
