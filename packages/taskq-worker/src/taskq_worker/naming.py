"""Node names: ``taskq@<host>``, and Celery's ``-n`` forms with ``%h``, ``%n`` and ``%d``.

A node name is ``name@host``. Given without ``@`` it names the *host* (Celery's rule:
``-n web1`` is ``celery@web1``). In either part ``%h`` is this machine's full host name,
``%n`` its first label and ``%d`` the rest (the domain), ``%%`` a percent sign.
"""

from __future__ import annotations

import re
import socket

__all__ = ["DEFAULT_NAME", "node_name", "expand"]

#: The name part of a worker's node name unless one is given.
DEFAULT_NAME = "taskq"

_EXPANSION = re.compile(r"%[hnd%]")


def expand(text: str, host: str) -> str:
    """Replace ``%h``, ``%n``, ``%d`` and ``%%`` in ``text`` for the machine named ``host``."""
    short, _, domain = host.partition(".")
    values = {"%h": host, "%n": short, "%d": domain, "%%": "%"}
    return _EXPANSION.sub(lambda match: values[match.group()], text)


def node_name(name: str | None, host: str | None = None) -> str:
    """The node name for ``-n name`` (None: ``taskq@<this host>``)."""
    host = host or socket.gethostname()
    if not name:
        return f"{DEFAULT_NAME}@{host}"
    part, at, rest = name.partition("@")
    if not at:
        part, rest = DEFAULT_NAME, name
    return f"{expand(part, host) or DEFAULT_NAME}@{expand(rest, host) or host}"
