# pyright: strict
"""The failures the command reports in one line (URLs in them masked with ``mask_url``)."""

from __future__ import annotations

from taskq.urls import mask_url

__all__ = ["CommandError", "mask_url"]


class CommandError(Exception):
    """Something the user can act on: printed as ``Error: <message>``, exit status 1.

    The exception it was raised from (``raise CommandError(...) from exc``) is kept for
    ``--debug``, which prints the whole chain; without it the user sees only the message.
    """
