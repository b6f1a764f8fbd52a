# pyright: strict
"""``python -m taskq_cli``: the same as the ``taskq`` script, for environments without it."""

from taskq_cli.main import main

raise SystemExit(main())
