"""Remote control of workers: revoke, ping, and other broadcast commands.

Requests and replies use Celery's pidbox layout (reference §1.9), so a Celery client controls
taskq workers and taskq's client controls Celery workers:

- a request is broadcast on the ``<control_exchange>.pidbox`` fanout exchange with body
  ``{"method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"}``;
- a client that wants replies first declares its reply queue ``<oid>.reply.<control_exchange>
  .pidbox``, bound to the direct exchange ``reply.<control_exchange>.pidbox`` with its id
  (``oid``) as routing key, and puts ``{"exchange", "routing_key": oid}`` in ``reply_to``;
- each worker that handles it sends ``{<nodename>: <reply>}`` with the request's ``ticket`` in
  its headers through that exchange (:meth:`Transport.send_direct`), so it lands in the queue.

:func:`request_envelope` and :func:`reply_envelope` are shared with the worker, which answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskq.contracts import QueueSpec, Transport
from taskq_protocol import Envelope, ProtocolError, jsoncodec

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = [
    "Control",
    "request_envelope",
    "reply_envelope",
    "pidbox_exchange",
    "reply_exchange",
    "reply_queue",
    "REPLY_QUEUE_EXPIRES",
]

#: Seconds an unused reply queue outlives its client where the broker honours ``x-expires``
#: (the default of Celery's ``control_queue_expires``); the client deletes it when it is done.
REPLY_QUEUE_EXPIRES = 10.0
#: Replies read per fetch while collecting.
_REPLY_BATCH = 100


def pidbox_exchange(control_exchange: str) -> str:
    return f"{control_exchange}.pidbox"


def reply_exchange(control_exchange: str) -> str:
    return f"reply.{control_exchange}.pidbox"


def reply_queue(control_exchange: str, oid: str, expires: float = REPLY_QUEUE_EXPIRES) -> QueueSpec:
    """The queue a client with id ``oid`` reads replies from, as kombu's
    ``Mailbox.get_reply_queue`` declares it (bound to the reply exchange by ``oid``)."""
    exchange = reply_exchange(control_exchange)
    return QueueSpec(
        name=f"{oid}.{exchange}",
        exchange=exchange,
        exchange_type="direct",
        routing_key=oid,
        arguments={"x-expires": int(expires * 1000)},
    )


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


def reply_envelope(
    nodename: str, ticket: str, reply: Any, *, exchange: str = "", routing_key: str = ""
) -> Envelope:
    """A reply as kombu's ``Mailbox._publish_reply`` sends it: transient, ``ticket`` and
    ``clock`` headers (Celery's collector keeps only replies carrying its ticket)."""
    return Envelope.create(
        jsoncodec.dumps({nodename: reply}),
        content_type="application/json",
        content_encoding="utf-8",
        headers={"ticket": ticket, "clock": 0},
        properties={"delivery_mode": 1},
        exchange=exchange,
        routing_key=routing_key,
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
        for ``timeout`` seconds (or until ``limit`` arrived).

        Replies come through a reply queue declared for this call and deleted after it, as
        kombu's client does on every virtual transport: a reply that arrives late then finds
        no queue and is dropped instead of piling up. Declaring it before the request goes
        out is what makes a fast worker's reply wait for us.
        """
        transport = self.app.transport
        ticket = str(uuid.uuid4())
        if not reply:
            transport.broadcast(
                self.exchange,
                request_envelope(
                    command, arguments or {}, ticket=ticket, reply_to=None, destination=destination
                ),
            )
            return []
        conf = self.app.conf
        spec = reply_queue(conf.control_exchange, self.app.thread_oid, conf.control_queue_expires)
        transport.declare_queue(spec)
        try:
            transport.broadcast(
                self.exchange,
                request_envelope(
                    command,
                    arguments or {},
                    ticket=ticket,
                    destination=destination,
                    reply_to={"exchange": spec.exchange, "routing_key": spec.routing_key},
                    expires=time.time() + timeout,
                ),
            )
            return _collect(transport, spec.name, ticket, timeout, limit)
        finally:
            transport.delete_queue(spec.name)

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


def _collect(
    transport: Transport, queue: str, ticket: str, timeout: float, limit: int | None
) -> list[dict[str, Any]]:
    """Read ``queue`` for ``timeout`` seconds (or until ``limit`` replies came): the bodies of
    the replies carrying ``ticket``, in arrival order. Everything read is acked; replies to an
    earlier call of the same client, which no one waits for any more, are dropped."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while limit is None or len(replies) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        deliveries = transport.fetch([queue], _REPLY_BATCH, remaining)
        if deliveries:
            transport.ack(deliveries)
        for delivery in deliveries:
            body = _reply_body(delivery.envelope, ticket)
            if body is not None:
                replies.append(body)
    return replies if limit is None else replies[:limit]


def _reply_body(envelope: Envelope, ticket: str) -> dict[str, Any] | None:
    if envelope.headers.get("ticket") != ticket:
        return None
    expires = envelope.headers.get("expires")
    if isinstance(expires, (int, float)) and 0 < expires < time.time():
        return None  # kombu's collector drops a reply past its own expiry too
    try:
        body = jsoncodec.loads(envelope.body)
    except ProtocolError:  # a reply we cannot read is no answer
        return None
    return body if isinstance(body, dict) else None  # pyright: ignore[reportUnknownVariableType]
