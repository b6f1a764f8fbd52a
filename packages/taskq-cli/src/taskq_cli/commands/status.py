# pyright: strict
"""``taskq status``: ping the workers and list the ones that answer in time."""

from __future__ import annotations

import json
from argparse import ArgumentParser, Namespace
from typing import TYPE_CHECKING, Any

from taskq_cli import argtypes
from taskq_cli.errors import CommandError

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["configure", "run"]


def configure(parser: ArgumentParser) -> None:
    group = parser.add_argument_group("remote control options")
    group.add_argument(
        "-t",
        "--timeout",
        type=argtypes.seconds,
        default=1.0,
        metavar="SECONDS",
        help="how long to wait for replies (default: 1)",
    )
    group.add_argument(
        "-d",
        "--destination",
        type=argtypes.names,
        metavar="NODES",
        help="ping only these nodes (comma-separated)",
    )
    group.add_argument("-j", "--json", action="store_true", help="print the replies as JSON")


def run(app: TaskQ, args: Namespace) -> int:
    replies = app.control.ping(destination=args.destination, timeout=args.timeout)
    if not replies:
        raise CommandError("No nodes replied within time constraint")
    if args.json:
        print(json.dumps(replies))
    else:
        for node, reply in sorted(_nodes(replies)):
            print(f"{node}: {_status(reply)}")
    if not args.quiet:
        count = sum(len(reply) for reply in replies)
        print(f"\n{count} {'node' if count == 1 else 'nodes'} online.")
    return 0


def _nodes(replies: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(node, reply) for answer in replies for node, reply in answer.items()]


def _status(reply: Any) -> str:
    if isinstance(reply, dict) and "error" in reply:
        return f"ERROR {reply['error']}"
    return "OK"
