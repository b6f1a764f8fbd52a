# pyright: strict
"""``taskq``: parse, load the app, run the command, and turn failures into one-line errors.

Exit status: 0 done, 1 failed (the message says why), 2 bad usage (argparse's). Tracebacks
are for ``--debug`` or ``TASKQ_TRACEBACK=1``: an operator reading a failed deploy wants the
reason, not forty lines of frames.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskq_cli.parser import GlobalOptions, build_parser, chosen_command
from taskq_cli.versions import version_text

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``taskq`` console script; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    command = chosen_command(args)
    if command is None:
        parser.print_help()
        return 0
    options = GlobalOptions.from_namespace(args)
    debug = options.debug or _truthy(os.environ.get("TASKQ_TRACEBACK", ""))
    from taskq_cli.loader import load_app

    app: TaskQ | None = None
    try:
        app = load_app(options)
        return command.run(app, args)
    except KeyboardInterrupt:
        print("Aborted!", file=sys.stderr)
        return 1
    except Exception as exc:
        from taskq_cli.explain import explain

        if debug:
            traceback.print_exception(exc)
        print(f"Error: {explain(exc, app, traceback_shown=debug)}", file=sys.stderr)
        return 1
    finally:
        if app is not None:
            app.close()


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
