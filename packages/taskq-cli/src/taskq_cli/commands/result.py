# pyright: strict
"""``taskq result ID``: print a task's return value (``repr`` as Celery does, or JSON).

A failed or revoked task prints its exception (its traceback with ``--traceback``) and exits
with 1, so a script can tell. A task that is not ready is an error too, unless ``--wait``
blocks until it is: printing nothing would read as a result of ``None``.

``--tree`` draws the whole workflow the id belongs to instead (:mod:`taskq_cli.result_tree`
builds it, :mod:`taskq_cli.tree_render` draws it): every task with its state, whether or not
it is finished; the exit status is 1 when a task in it failed or was revoked.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from argparse import ArgumentParser, Namespace
from datetime import date, time
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any

from taskq_cli import argtypes
from taskq_cli.errors import CommandError
from taskq_cli.result_tree import DEFAULT_DEPTH, DEFAULT_WIDTH

if TYPE_CHECKING:
    from taskq import TaskQ
    from taskq_cli.result_tree import Node

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
    tree = parser.add_argument_group("tree options")
    tree.add_argument(
        "--tree",
        action="store_true",
        help="show the workflow ID belongs to (chains, groups, chords) with every task's state",
    )
    tree.add_argument(
        "--subtree",
        action="store_true",
        help="start the tree at ID instead of at the workflow's first task (implies --tree)",
    )
    tree.add_argument(
        "--depth",
        type=argtypes.positive_int,
        default=DEFAULT_DEPTH,
        metavar="N",
        help=f"draw N levels of groups and fan-outs (default {DEFAULT_DEPTH})",
    )
    tree.add_argument(
        "--width",
        type=argtypes.positive_int,
        default=DEFAULT_WIDTH,
        metavar="N",
        help=f"draw N members, children or steps of each node (default {DEFAULT_WIDTH})",
    )
    tree.add_argument("--no-color", action="store_true", help="never color the states")


def run(app: TaskQ, args: Namespace) -> int:
    from taskq.exceptions import TimeoutError as ResultTimeout
    from taskq_protocol import states

    if args.tree or args.subtree:
        return _run_tree(app, args)
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


#: How often ``--tree --wait`` reads the store again and redraws.
_TREE_REFRESH = 0.5
#: Home the cursor and clear the screen, so each drawing replaces the one before.
_CLEAR = "\x1b[H\x1b[2J"


def _run_tree(app: TaskQ, args: Namespace) -> int:
    from taskq_cli.result_tree import Limits, TaskNode, TreeBuilder, has_failed, is_finished
    from taskq_protocol import states

    task_id: str = args.task_id
    builder = TreeBuilder(app.backend, Limits(depth=args.depth, width=args.width))
    timeout: float | None = args.timeout
    wait = args.wait or timeout is not None
    deadline = None if timeout is None else monotonic() + timeout
    # Redrawn in place only on a terminal: a log or a pipe gets the final tree alone.
    live = wait and not args.json and sys.stdout.isatty()
    tree = builder.build(task_id, climb=not args.subtree)
    redrawn = False
    while wait and not is_finished(tree):
        if live:
            print(_CLEAR + _tree_text(tree, args), flush=True)
            redrawn = True
        remaining = None if deadline is None else deadline - monotonic()
        if remaining is not None and remaining <= 0:
            if not live:  # on a terminal it is on the screen already
                print(_tree_text(tree, args))
            raise CommandError(f"the workflow of {task_id} is not finished after {timeout:g} s")
        sleep(_TREE_REFRESH if remaining is None else min(_TREE_REFRESH, remaining))
        tree = builder.build(task_id, climb=not args.subtree)
    if args.json:
        from taskq_cli.tree_render import to_json

        print(_json(to_json(tree)))
    else:
        print((_CLEAR if redrawn else "") + _tree_text(tree, args))
        if tree == TaskNode(task_id, None, states.PENDING):
            print(
                f"{task_id} is not in the result store yet (or unknown), so the tree cannot "
                "climb from it to its workflow; try the id of the workflow's first task, "
                "or --wait",
                file=sys.stderr,
            )
    return 1 if has_failed(tree) else 0


def _tree_text(tree: Node, args: Namespace) -> str:
    from taskq_cli.tree_render import ASCII, UNICODE, render_text

    if args.json:
        from taskq_cli.tree_render import to_json

        return _json(to_json(tree))
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "├└│…".encode(encoding)
        glyphs = UNICODE
    except (UnicodeEncodeError, LookupError):
        glyphs = ASCII
    return render_text(tree, color=_use_color(args), glyphs=glyphs)


def _use_color(args: Namespace) -> bool:
    """On a terminal, unless ``--no-color``, ``NO_COLOR`` (no-color.org) or a dumb terminal."""
    if args.no_color or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


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
