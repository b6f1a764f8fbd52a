# pyright: strict
"""``taskq result ID``: print a task's return value (``repr`` as Celery does, or JSON).

A failed or revoked task prints its exception (its traceback with ``--traceback``) and exits
with 1, so a script can tell. A task that is not ready is an error too, unless ``--wait``
blocks until it is: printing nothing would read as a result of ``None``.
"""

from __future__ import annotations

import json
import traceback
from argparse import ArgumentParser, Namespace
from datetime import date, time
from typing import TYPE_CHECKING, Any

from taskq_cli import argtypes
from taskq_cli.errors import CommandError

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["configure", "run"]


def configure(parser: ArgumentParser) -> None:
    parser.add_argument("task_id", metavar="ID", help="the task id `taskq call` printed")
    group = parser.add_argument_group("result options")
    group.add_argument("-t", "--task", metavar="NAME", help="the task's name")
    group.add_argument("--traceback", action="store_true", help="print a failed task's traceback")
    group.add_argument("--wait", action="store_true", help="wait until the task is done")
    group.add_argument(
        "--timeout",
        type=argtypes.seconds,
        metavar="SECONDS",
        help="wait at most SECONDS (implies --wait)",
    )
    group.add_argument("--json", action="store_true", help="print the result as JSON")


def run(app: TaskQ, args: Namespace) -> int:
    from taskq.exceptions import TimeoutError as ResultTimeout
    from taskq_protocol import states

    task_id: str = args.task_id
    result = app.AsyncResult(task_id, task_name=args.task)
    timeout: float | None = args.timeout
    if args.wait or timeout is not None:
        try:
            result.get(timeout=timeout, propagate=False)
        except ResultTimeout:
            waited = f" after {timeout:g} s" if timeout is not None else ""
            raise CommandError(f"task {task_id} is still {result.state}{waited}") from None
    state = result.state
    if state not in states.READY_STATES:
        unknown = " (unknown id, or not started yet)" if state == states.PENDING else ""
        raise CommandError(f"task {task_id} is {state}{unknown}; --wait waits for it")
    if state == states.SUCCESS:
        print(_json(result.result) if args.json else repr(result.result))
        return 0
    _print_failure(state, result.result, result.traceback, args)
    return 1


def _print_failure(state: str, exc: object, trace: str | None, args: Namespace) -> None:
    error = _exception_line(exc)
    if args.json:
        fields: dict[str, Any] = {"state": state, "error": error}
        if args.traceback:
            fields["traceback"] = trace
        print(_json(fields))
    elif args.traceback and trace:
        print(trace.rstrip("\n"))  # a stored traceback ends with the exception line
    else:
        print(error)


def _exception_line(exc: object) -> str:
    if isinstance(exc, BaseException):
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return repr(exc)


def _json(value: object) -> str:
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


def _jsonable(value: object) -> object:
    """What the json module cannot write: times as ISO text, sets as lists, others as text."""
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    return str(value)
