# pyright: strict
"""``taskq purge``: delete every waiting message of the app's queues (or ``-Q``'s).

There is no undo, so it asks first; without a terminal to ask on (a script, a cron job) it
refuses unless ``-f`` says the caller means it. Messages a worker holds are not waiting and
stay where they are.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser, Namespace
from typing import TYPE_CHECKING

from taskq_cli import argtypes
from taskq_cli.errors import CommandError

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["configure", "run"]


def configure(parser: ArgumentParser) -> None:
    group = parser.add_argument_group("purge options")
    group.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    group.add_argument(
        "-Q",
        "--queues",
        type=argtypes.names,
        metavar="A,B",
        help="purge these queues (default: the app's queues)",
    )
    group.add_argument(
        "-X", "--exclude-queues", type=argtypes.names, metavar="A,B", help="leave these queues"
    )


def run(app: TaskQ, args: Namespace) -> int:
    router = app.router
    chosen = router.select(args.queues or [])
    names = [spec.name for spec in router.exclude(args.exclude_queues or [], among=chosen)]
    if not names:
        print("No queues to purge.")
        return 0
    queues = f"{_plural(len(names), 'queue')}: {', '.join(names)}"
    if not args.force and not _confirmed(queues):
        print("Aborted!", file=sys.stderr)
        return 1
    transport = app.transport
    deleted = sum(transport.purge(name) for name in names)
    if deleted:
        print(f"Purged {_plural(deleted, 'message')} from {_plural(len(names), 'queue')}.")
    else:
        print(f"No messages purged from {_plural(len(names), 'queue')}.")
    return 0


def _confirmed(queues: str) -> bool:
    if not sys.stdin.isatty():
        raise CommandError(
            f"purge would delete every waiting message of {queues}; confirm with -f "
            "(standard input is not a terminal to ask on)"
        )
    sys.stderr.write(
        f"WARNING: this deletes every waiting message of {queues}.\n"
        "There is no undo. (To skip this question, use -f.)\n"
        "Delete them? [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
