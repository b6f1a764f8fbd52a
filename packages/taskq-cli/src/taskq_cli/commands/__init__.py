# pyright: strict
"""The subcommands, each a module with ``configure(parser)`` and ``run(app, args)``.

Command modules import taskq only when they run, so ``taskq --help`` and a usage error stay
instant.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskq_cli.commands import call, purge, result, status, worker

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["Command", "COMMANDS"]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    configure: Callable[[ArgumentParser], None]
    #: Runs the command with the loaded app; returns the exit status.
    run: Callable[[TaskQ, Namespace], int]


COMMANDS = (
    Command("worker", "Start a worker.", worker.configure, worker.run),
    Command("call", "Send a task by name; prints its id.", call.configure, call.run),
    Command("result", "Print a task's result.", result.configure, result.run),
    Command("purge", "Delete every waiting message of the queues.", purge.configure, purge.run),
    Command("status", "List the workers that answer a ping.", status.configure, status.run),
)
