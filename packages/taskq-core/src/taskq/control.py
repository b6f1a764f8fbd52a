"""Remote control of workers: revoke, ping, and other broadcast commands.

Requests and replies use Celery's pidbox layout (reference §1.9): a request is broadcast on
the ``<control_exchange>.pidbox`` fanout exchange with body ``{"method", "arguments",
"destination", "pattern", "matcher", "ticket", "reply_to"}``; each worker that handles it
broadcasts ``{<nodename>: <reply>}`` on ``reply.<control_exchange>.pidbox`` with the request's
``ticket`` in its headers. :func:`request_envelope` and :func:`reply_envelope` are shared with the
worker, which answers.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskq_protocol import Envelope, jsoncodec

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["Control", "request_envelope", "reply_envelope", "pidbox_exchange", "reply_exchange"]


def pidbox_exchange(control_exchange: str) -> str:
    return f"{control_exchange}.pidbox"


def reply_exchange(control_exchange: str) -> str:
    return f"reply.{control_exchange}.pidbox"


def request_envelope(
    method: str,
    arguments: Mapping[str, Any],
    *,
    ticket: str,
    reply_to: Mapping[str, str] | None,
    destination: Sequence[str] | None = None,
    expires: float = 0.0,
) -> Envelope:
    body = {
        "method": method,
        "arguments": dict(arguments),
        "destination": list(destination) if destination else None,
        "pattern": None,
        "matcher": None,
        "ticket": ticket,
        "reply_to": dict(reply_to) if reply_to else None,
    }
    return Envelope.create(
        jsoncodec.dumps(body),
        content_type="application/json",
        content_encoding="utf-8",
        headers={"clock": 0, "expires": expires},
    )


def reply_envelope(nodename: str, ticket: str, reply: Any) -> Envelope:
    return Envelope.create(
        jsoncodec.dumps({nodename: reply}),
        content_type="application/json",
        content_encoding="utf-8",
        headers={"ticket": ticket, "clock": 0},
    )


class Control:
    """``app.control``: commands broadcast to every worker (or the named ``destination``)."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app

    @property
    def exchange(self) -> str:
        return pidbox_exchange(self.app.conf.control_exchange)

    def broadcast(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Send ``command`` to the workers; with ``reply``, collect ``{node: reply}`` answers
        for ``timeout`` seconds (or until ``limit`` arrived)."""
        transport = self.app.transport
        ticket = str(uuid.uuid4())
        replies: list[dict[str, Any]] = []
        arrived = threading.Condition()

        def on_reply(envelope: Envelope) -> None:
            if envelope.headers.get("ticket") != ticket:
                return
            body = jsoncodec.loads(envelope.body)
            if isinstance(body, dict):
                with arrived:
                    replies.append(body)  # pyright: ignore[reportUnknownArgumentType]
                    arrived.notify_all()

        reply_ex = reply_exchange(self.app.conf.control_exchange)
        unsubscribe = transport.subscribe(reply_ex, on_reply) if reply else None
        try:
            transport.broadcast(
                self.exchange,
                request_envelope(
                    command,
                    arguments or {},
                    ticket=ticket,
                    destination=destination,
                    reply_to={"exchange": reply_ex, "routing_key": self.app.thread_oid}
                    if reply
                    else None,
                    expires=time.time() + timeout if reply else 0.0,
                ),
            )
            if unsubscribe is None:
                return []
            deadline = time.monotonic() + timeout
            with arrived:
                while limit is None or len(replies) < limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    arrived.wait(remaining)
                return list(replies)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | None = None,
    ) -> None:
        """Tell every worker to discard the task(s) and, with ``terminate``, kill a running one."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        self.broadcast(
            "revoke",
            {"task_id": ids, "terminate": terminate, "signal": signal or "SIGTERM"},
            destination=destination,
        )

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0
    ) -> list[dict[str, Any]]:
        """``[{"worker@host": {"ok": "pong"}}, ...]`` from every worker that answers in time."""
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout)

    def shutdown(self, destination: Sequence[str] | None = None) -> None:
        self.broadcast("shutdown", destination=destination)

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | float | None,
        destination: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        return self.broadcast(
            "rate_limit",
            {"task_name": task_name, "rate_limit": rate_limit},
            destination=destination,
            reply=True,
        )

    def purge(self) -> int:
        """Delete every waiting message of the app's queues; returns how many."""
        transport = self.app.transport
        return sum(transport.purge(spec.name) for spec in self.app.router.queues())
