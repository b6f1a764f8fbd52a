"""The few lines a worker prints at start: who it is, what it talks to, what it runs.

Passwords in URLs are masked (``redis://:****@host``), so the banner can be pasted into a ticket.
With no broker configured it says plainly where the embedded SQLite file is, because a worker
and a client started in different directories would otherwise never meet.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from taskq.urls import mask_url

__all__ = ["mask_url", "banner"]


def banner(
    *,
    node: str,
    version: str,
    app: str,
    broker: str,
    results: str | None,
    broker_is_default: bool,
    pool: str,
    concurrency: int,
    queues: Sequence[str],
    tasks: Iterable[str],
) -> str:
    """The start-up banner as one string (no trailing newline)."""
    lines = [
        f"taskq worker {node} (taskq-worker {version})",
        f"  app:          {app}",
        f"  broker:       {mask_url(broker)}",
        f"  results:      {mask_url(results) if results else 'disabled (no result_backend)'}",
        f"  concurrency:  {concurrency} ({pool})",
        f"  queues:       {', '.join(queues)}",
    ]
    if broker_is_default:
        lines.append(
            "  note:         no broker_url is configured, so tasks and results go through the "
            f"embedded SQLite file taskq.sqlite3 in {os.getcwd()}; clients must run in the "
            "same directory (or set broker_url)"
        )
    names = sorted(tasks)
    lines += (
        ["", "[tasks]", *(f"  . {name}" for name in names)]
        if names
        else ["", "[tasks]", "  (none)"]
    )
    return "\n".join(lines)
