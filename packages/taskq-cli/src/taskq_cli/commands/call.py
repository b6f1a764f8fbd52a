# pyright: strict
"""``taskq call NAME``: send a task by name, as ``app.send_task`` does, and print its id.

The task does not need to be registered in the app: a client often only knows the names of
tasks that another service's workers run. A name the app does not know is sent all the same,
with a warning, since it is also what a typo looks like.
"""

from __future__ import annotations

import difflib
import sys
from argparse import ArgumentParser, Namespace
from typing import TYPE_CHECKING, Any

from taskq_cli import argtypes

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["configure", "run"]

_OPTIONS = ("eta", "countdown", "expires", "serializer", "queue", "exchange", "routing_key")


def configure(parser: ArgumentParser) -> None:
    parser.add_argument("name", help="the task's name, e.g. proj.tasks.add")
    calling = parser.add_argument_group("calling options")
    calling.add_argument(
        "-a",
        "--args",
        type=argtypes.json_array,
        default=[],
        metavar="JSON",
        help="positional arguments, a JSON array: '[2, 2]'",
    )
    calling.add_argument(
        "-k",
        "--kwargs",
        type=argtypes.json_object,
        default={},
        metavar="JSON",
        help="keyword arguments, a JSON object: '{\"x\": 1}'",
    )
    when = calling.add_mutually_exclusive_group()
    when.add_argument(
        "--eta",
        type=argtypes.timestamp,
        metavar="TIME",
        help="run at this ISO 8601 time (UTC when it has no offset)",
    )
    when.add_argument(
        "--countdown", type=argtypes.seconds, metavar="SECONDS", help="run in SECONDS"
    )
    calling.add_argument(
        "--expires",
        type=argtypes.timestamp_or_seconds,
        metavar="WHEN",
        help="discard the task if not started by then: seconds from now or an ISO 8601 time",
    )
    calling.add_argument("--serializer", help="json, pickle, yaml, msgpack (default: the app's)")
    routing = parser.add_argument_group("routing options")
    routing.add_argument("--queue", help="send to this queue")
    routing.add_argument("--exchange", help="publish to this exchange")
    routing.add_argument("--routing-key", help="publish with this routing key")


def run(app: TaskQ, args: Namespace) -> int:
    name: str = args.name
    app.import_task_modules()
    if name not in app.tasks:
        print(f"Warning: {_unregistered(name, list(app.tasks))}", file=sys.stderr)
    options: dict[str, Any] = {
        key: getattr(args, key) for key in _OPTIONS if getattr(args, key) is not None
    }
    result = app.send_task(name, args.args, args.kwargs, **options)
    print(result.id)
    return 0


def _unregistered(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"task {name!r} is not registered in this app{hint}; sending it by name anyway"
