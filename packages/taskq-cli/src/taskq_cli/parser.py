# pyright: strict
"""The argument parser: Celery's global options, then a command and its options.

Global options are accepted before the command, as Celery takes them, and after it too
(``taskq worker -A proj``), as Celery 4 took ``-A``: they are declared on the main parser and
on every command with ``SUPPRESS`` defaults, so the place they were given in is the only one
that sets them.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from taskq_cli.commands import COMMANDS, Command

__all__ = ["build_parser", "chosen_command", "GlobalOptions"]


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """What the global options say (also found by name on the parsed arguments)."""

    app: str | None = None
    broker: str | None = None
    result_backend: str | None = None
    config: str | None = None
    workdir: str | None = None
    quiet: bool = False
    debug: bool = False

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> GlobalOptions:
        return cls(
            app=args.app,
            broker=args.broker,
            result_backend=args.result_backend,
            config=args.config,
            workdir=args.workdir,
            quiet=args.quiet,
            debug=args.debug,
        )


def _global_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "-A",
        "--app",
        metavar="APP",
        help="the app: module, module:attribute or module.attribute (e.g. proj, proj.tasks:app)",
    )
    group.add_argument("-b", "--broker", metavar="URL", help="broker URL, over the app's")
    group.add_argument("--result-backend", metavar="URL", help="result backend URL, over the app's")
    group.add_argument(
        "--config", metavar="MODULE", help="module to load settings from (config_from_object)"
    )
    group.add_argument("--workdir", metavar="DIR", help="change to DIR before loading the app")
    group.add_argument("-q", "--quiet", action="store_true", help="print less")
    group.add_argument(
        "--debug", action="store_true", help="print tracebacks (also: TASKQ_TRACEBACK=1)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """``taskq [global options] <command> [options]``; the chosen :class:`Command` ends up in
    ``args.command`` (None when no command was given)."""
    parser = argparse.ArgumentParser(
        prog="taskq",
        description="taskq: run workers, send tasks and read results, the Celery way.",
        parents=[_global_options()],
    )
    parser.add_argument(
        "--version", action="store_true", help="print the installed taskq packages and exit"
    )
    # The defaults live on the main parser only: a command's parser leaves a global option
    # it was not given alone instead of resetting what came before the command. (Each parser
    # gets its own copies of the options: set_defaults changes the option objects it holds.)
    parser.set_defaults(command=None, **asdict(GlobalOptions()))
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            parents=[_global_options()],
        )
        command.configure(sub)
        sub.set_defaults(command=command)
    return parser


def chosen_command(args: argparse.Namespace) -> Command | None:
    command: Command | None = args.command
    return command
