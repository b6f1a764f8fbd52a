# pyright: strict
"""``taskq worker``: Celery's worker options, handed to :class:`taskq_worker.Worker`.

An option left out is passed as ``None``, so the app's setting (``worker_pool``,
``worker_concurrency``, ``task_time_limit``, ...) applies, as in Celery.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from typing import TYPE_CHECKING

from taskq_cli import argtypes

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["configure", "run"]


def configure(parser: ArgumentParser) -> None:
    group = parser.add_argument_group("worker options")
    group.add_argument(
        "-n",
        "--hostname",
        metavar="NAME",
        help="node name, name@host; %%h, %%n, %%d expand to the host (default: taskq@<host>)",
    )
    group.add_argument(
        "-P", "--pool", help="solo, threads or prefork (default: the worker_pool setting)"
    )
    group.add_argument("-c", "--concurrency", type=argtypes.positive_int, help="tasks run at once")
    group.add_argument(
        "-Q", "--queues", type=argtypes.names, metavar="A,B", help="consume only these queues"
    )
    group.add_argument(
        "-X",
        "--exclude-queues",
        type=argtypes.names,
        metavar="A,B",
        help="consume every queue but these",
    )
    group.add_argument(
        "-l",
        "--loglevel",
        type=argtypes.loglevel,
        default="WARNING",
        metavar="LEVEL",
        help=f"{', '.join(argtypes.LOG_LEVELS)} (default: WARNING)",
    )
    group.add_argument("--logfile", metavar="PATH", help="log here instead of stderr")
    group.add_argument(
        "--prefetch-multiplier",
        type=argtypes.non_negative_int,
        metavar="N",
        help="messages reserved per concurrency slot",
    )
    group.add_argument(
        "--max-tasks-per-child",
        type=argtypes.positive_int,
        metavar="N",
        help="replace a pool process after it ran N tasks",
    )
    group.add_argument(
        "--max-memory-per-child",
        type=argtypes.positive_int,
        metavar="KIB",
        help="replace a pool process whose resident memory exceeds KIB kilobytes",
    )
    group.add_argument(
        "--time-limit",
        type=argtypes.seconds,
        metavar="SECONDS",
        help="hard time limit per task",
    )
    group.add_argument(
        "--soft-time-limit",
        type=argtypes.seconds,
        metavar="SECONDS",
        help="soft time limit per task (raises SoftTimeLimitExceeded in the task)",
    )
    group.add_argument(
        "--purge",
        "--discard",
        action="store_true",
        help="delete the waiting messages of the consumed queues before starting",
    )


def run(app: TaskQ, args: Namespace) -> int:
    from taskq_worker import Worker

    worker = Worker(
        app,
        hostname=args.hostname,
        pool=args.pool,
        concurrency=args.concurrency,
        queues=args.queues,
        exclude_queues=args.exclude_queues,
        loglevel=args.loglevel,
        prefetch_multiplier=args.prefetch_multiplier,
        max_tasks_per_child=args.max_tasks_per_child,
        max_memory_per_child=args.max_memory_per_child,
        time_limit=args.time_limit,
        soft_time_limit=args.soft_time_limit,
        logfile=args.logfile,
        purge=args.purge,
    )
    code: int = worker.start()
    return code
