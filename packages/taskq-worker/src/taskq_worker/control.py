"""Answering remote control: ``revoke``, ``ping``, ``shutdown``, ``rate_limit`` and the
read-only inspections (``stats``, ``active``, ``reserved``, ``scheduled``, ``registered``,
``revoked``, ``active_queues``).

Requests arrive in Celery's pidbox layout (:mod:`taskq.control`) on the transport's thread
and are handled on the consumer thread, which owns the state they read and change. A request
for other nodes (``destination``) or one whose sender stopped waiting (``expires``) is
ignored. A reply is sent only when the request asks for one (``reply_to``), as Celery's worker
sends it (kombu's ``Mailbox._publish_reply``): ``{nodename: reply}`` with the request's
``ticket`` in its headers, through the direct exchange ``reply_to["exchange"]`` with routing key
``reply_to["routing_key"]`` (the client's id), which reaches the reply queue the client bound
to it, Celery's or taskq's alike. A bad request gets ``{"error": ...}`` instead of silence.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from taskq.contracts import Transport, TransportError
from taskq.control import reply_envelope
from taskq.rates import parse_rate
from taskq_protocol import Envelope, jsoncodec
from taskq_worker.consumer import Consumer

__all__ = ["RemoteControl", "parse_signal"]

logger = logging.getLogger(__name__)

Reply = dict[str, Any] | list[Any]


def parse_signal(value: object) -> int:
    """``"SIGKILL"``, ``"KILL"``, ``"kill"`` or ``9`` as a signal number (None: SIGTERM)."""
    if value is None:
        return int(signal.SIGTERM)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def _reply_target(reply_to: object) -> tuple[str, str] | None:
    """``(exchange, routing_key)`` from a request's ``reply_to``; None when it names neither."""
    if not isinstance(reply_to, dict):
        return None
    fields: dict[str, Any] = reply_to  # pyright: ignore[reportUnknownVariableType]
    exchange, routing_key = fields.get("exchange") or "", fields.get("routing_key") or ""
    if not isinstance(exchange, str) or not isinstance(routing_key, str) or not routing_key:
        return None
    return exchange, routing_key


class RemoteControl:
    """The commands one worker answers; called as ``control(consumer, envelope)``."""

    def __init__(
        self,
        transport: Transport,
        *,
        hostname: str,
        reply_exchange: str,
        queues: Sequence[str],
        shutdown: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.hostname = hostname
        #: Where this node's clients expect replies; each request's ``reply_to`` names the
        #: exchange actually used (Celery's client may run another control_exchange).
        self.reply_exchange = reply_exchange
        self.queues = list(queues)
        self.shutdown = shutdown
        self._commands: dict[str, Callable[..., Reply]] = {
            "ping": self.ping,
            "revoke": self.revoke,
            "shutdown": self.shutdown_command,
            "rate_limit": self.rate_limit,
            "stats": self.stats,
            "active": self.active,
            "reserved": self.reserved,
            "scheduled": self.scheduled,
            "registered": self.registered,
            "revoked": self.revoked,
            "active_queues": self.active_queues,
        }

    def __call__(self, consumer: Consumer, envelope: Envelope) -> None:
        try:
            body = jsoncodec.loads(envelope.body)
        except Exception as exc:  # a malformed request must not stop the worker
            logger.warning("Ignoring an unreadable control message: %s", exc)
            return
        if not isinstance(body, dict):
            logger.warning("Ignoring a control message that is not a JSON object")
            return
        request: dict[str, Any] = body  # pyright: ignore[reportUnknownVariableType]
        destination = request.get("destination")
        if destination and self.hostname not in destination:
            return
        expires = envelope.headers.get("expires")
        if isinstance(expires, (int, float)) and 0 < expires < time.time():
            return  # the sender stopped waiting for replies
        method: object = request.get("method")
        arguments: object = request.get("arguments") or {}
        reply = self._run(consumer, method, arguments)
        reply_to: object = request.get("reply_to")
        if reply_to:
            self._reply(reply_to, str(request.get("ticket") or ""), method, reply)

    def _reply(self, reply_to: object, ticket: str, method: object, reply: Reply) -> None:
        """Send ``reply`` where the request said; a reply nobody waits for any more (its
        queue expired or was deleted) is dropped, as kombu drops it."""
        target = _reply_target(reply_to)
        if target is None:
            logger.warning("Not replying to %r: unusable reply_to %r", method, reply_to)
            return
        exchange, routing_key = target
        envelope = reply_envelope(
            self.hostname, ticket, reply, exchange=exchange, routing_key=routing_key
        )
        try:
            if exchange:
                delivered = self.transport.send_direct(exchange, routing_key, envelope)
            else:  # the anonymous exchange routes to the queue the key names
                self.transport.publish(routing_key, envelope)
                delivered = True
        except TransportError as exc:
            logger.error("Could not reply to control command %r: %s", method, exc)
            return
        if not delivered:
            logger.debug(
                "Reply to %r dropped: no queue bound to %s/%s any more",
                method,
                exchange,
                routing_key,
            )

    def _run(self, consumer: Consumer, method: object, arguments: object) -> Reply:
        command = self._commands.get(method) if isinstance(method, str) else None
        if command is None:
            return {"error": f"No such control command: {method!r}"}
        if not isinstance(arguments, dict):
            return {"error": f"{method}: arguments must be an object, got {arguments!r}"}
        try:
            return command(consumer, **arguments)
        except Exception as exc:
            logger.warning("Control command %s failed: %r", method, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}

    # -- commands ----------------------------------------------------------------------------

    def ping(self, consumer: Consumer, **_: Any) -> Reply:
        return {"ok": "pong"}

    def revoke(
        self,
        consumer: Consumer,
        task_id: str | list[str],
        terminate: bool = False,
        signal: object = None,
        **_: Any,
    ) -> Reply:
        ids = [task_id] if isinstance(task_id, str) else [str(i) for i in task_id]
        signum = parse_signal(signal) if terminate else None
        signalled = consumer.revoke(ids, terminate=bool(terminate), signum=signum)
        logger.info("Tasks flagged as revoked: %s", ", ".join(ids))
        if signalled:
            logger.info("Terminating %s (signal %s)", ", ".join(signalled), signum)
        return {"ok": f"tasks {', '.join(ids)} flagged as revoked"}

    def shutdown_command(self, consumer: Consumer, **_: Any) -> Reply:
        logger.warning("Got shutdown from remote")
        self.shutdown()
        return {"ok": "shutting down"}

    def rate_limit(
        self, consumer: Consumer, task_name: str, rate_limit: object = None, **_: Any
    ) -> Reply:
        if task_name not in consumer.app.tasks:
            return {"error": f"unknown task {task_name!r}"}
        rate = parse_rate(rate_limit)
        if not consumer.set_rate_limit(task_name, rate):
            return {"error": "rate limits are disabled in this worker (worker_disable_rate_limits)"}
        logger.info("New rate limit for tasks of type %s: %s", task_name, rate_limit)
        return {"ok": "new rate limit set successfully"}

    def stats(self, consumer: Consumer, **_: Any) -> Reply:
        return consumer.stats()

    def active(self, consumer: Consumer, **_: Any) -> Reply:
        return [job.info(self.hostname) for job in consumer.running.values()]

    def reserved(self, consumer: Consumer, **_: Any) -> Reply:
        return [job.info(self.hostname) for job in consumer.waiting()]

    def scheduled(self, consumer: Consumer, **_: Any) -> Reply:
        """Jobs held until their ETA, in Celery's shape: ``{"eta", "priority", "request"}``."""
        return [
            {
                "eta": datetime.fromtimestamp(eta, timezone.utc).isoformat(),
                "priority": job.delivery_info.get("priority") or 0,
                "request": job.info(self.hostname),
            }
            for eta, job in consumer.scheduled()
        ]

    def registered(self, consumer: Consumer, **_: Any) -> Reply:
        return sorted(consumer.app.tasks)

    def revoked(self, consumer: Consumer, **_: Any) -> Reply:
        return consumer.revoked.ids()

    def active_queues(self, consumer: Consumer, **_: Any) -> Reply:
        return [{"name": name} for name in self.queues]
