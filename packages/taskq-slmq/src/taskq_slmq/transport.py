"""``slmq://user:api_key@host:port/account``: the SoftLayer Message Queue transport.

Queues and messages are the ones kombu's SLMQ transport uses (same queue names, kombu's JSON
envelope as the message body), so Celery and taskq share them.

- **Publish**: ``POST messages``; an ETA becomes ``visibility_delay`` (whole seconds, rounded
  up: the service counts seconds). A queue that does not exist yet is created first.
- **Fetch**: ``GET messages?batch=N`` (the popped messages turn invisible for the queue's
  ``visibility_interval``), then each is *re-pushed* with ``visibility_delay`` = this
  transport's visibility timeout and a delivery count in its ``fields``, and the popped one is
  deleted. The service has no call to change one message's visibility or to count deliveries;
  the copy gives both: it turns visible when the timeout passes (the redelivery), and
  ``extend`` swaps it for one delayed longer. The service cannot wait for messages, so an
  empty fetch polls, backing off to ``poll_interval``.
- **Ack** deletes the copy; a copy that is gone went back to the queue, and settling it does
  nothing. **Reject** and **dead_letter** delete it first and only then send it on.
- **Counting**: ``message_count`` less this transport's own deliveries (the API cannot tell
  another consumer's in-flight copy from a delayed message). **Purge** deletes and recreates
  the queue, which also drops other consumers' in-flight deliveries.
- **Direct exchanges**: a binding is a queue tag; ``send_direct`` lists queues by tag.
  ``x-expires`` is not honoured.
- **Broadcast** is not supported (the service's topics are not reachable through the queue
  API kombu uses); no priorities.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.exceptions import ImproperlyConfigured
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.options import BROKER_OPTIONS, seconds_option
from taskq.transports.polling import Backoff
from taskq.transports.unacked import Unacked
from taskq_protocol import Envelope, ProtocolError
from taskq_slmq.client import Popped, SlmqClient
from taskq_slmq.naming import binding_tag, entity_name

__all__ = ["SlmqTransport", "SlmqHandle"]

logger = logging.getLogger("taskq_slmq.transport")

#: The field on a message that counts its earlier deliveries.
DELIVERIES_FIELD = "taskq_deliveries"
#: The service's largest batch.
MAX_BATCH = 100


@dataclass(slots=True, eq=False)
class SlmqHandle:
    """A delivery's current copy (``extend`` replaces it) and what it carries.

    Compared by identity: ``extend`` changes ``message_id`` while the handle is in a set.
    """

    queue: str
    message_id: str
    body: str
    deliveries: int


def _redelivered(body: str) -> str:
    try:
        document: Any = json.loads(body)
    except ValueError:
        return body
    if isinstance(document, dict):
        envelope = cast("dict[str, Any]", document)
        headers: Any = envelope.get("headers")
        if isinstance(headers, dict):
            cast("dict[str, Any]", headers)["redelivered"] = True
        properties: Any = envelope.get("properties")
        info: Any = (
            cast("dict[str, Any]", properties).get("delivery_info")
            if isinstance(properties, dict)
            else None
        )
        if isinstance(info, dict):
            cast("dict[str, Any]", info)["redelivered"] = True
        return json.dumps(envelope, ensure_ascii=False)
    return body


class _Held(Unacked[SlmqHandle]):
    """The deliveries in hand, which ``queue_length`` subtracts from the service's count."""

    def peek(self) -> list[SlmqHandle]:
        with self._lock:
            return list(self._handles)


class SlmqTransport:
    schemes: tuple[str, ...] = ("slmq",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "slmq":
            raise ImproperlyConfigured("broker_url", f"not an slmq:// URL: {url!r}")
        account = unquote(parts.path.strip("/"))
        if not account or not parts.hostname:
            raise ImproperlyConfigured(
                "broker_url", "slmq:// URLs name the host and account: slmq://user:key@host/acct"
            )
        secure = options.get("secure", True)
        scheme = "https" if secure else "http"
        port = f":{parts.port}" if parts.port else ""
        self._client = SlmqClient(
            f"{scheme}://{parts.hostname}{port}",
            account,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
        )
        self.visibility_timeout = seconds_option(
            options, "visibility_timeout", 1800.0, BROKER_OPTIONS
        )
        self.poll_interval = seconds_option(options, "polling_interval", 0.5, BROKER_OPTIONS)
        prefix = options.get("queue_name_prefix", "")
        self.queue_name_prefix = prefix if isinstance(prefix, str) else ""
        self._unacked = _Held(SlmqHandle, "SLMQ")
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._connected = False

    def _name(self, queue: str) -> str:
        return entity_name(check_queue(queue), self.queue_name_prefix)

    # -- lifecycle -----------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if not self._connected:
                self._client.authenticate()
                self._connected = True

    def close(self) -> None:
        for handle in self._unacked.take_all():
            try:
                self._send_back(handle)
            except TransportError as exc:
                logger.warning("could not give back a delivery on close: %s", exc)
        with self._lock:
            self._connected = False

    # -- queues --------------------------------------------------------------------------

    def _ensure(self, name: str, tags: Sequence[str] = ()) -> None:
        if name in self._known and not tags:
            return
        detail = self._client.queue_detail(name)
        existing = [str(t) for t in (detail or {}).get("tags", [])]
        if detail is None or not set(tags).issubset(existing):
            self._client.put_queue(
                name, math.ceil(self.visibility_timeout), sorted({*existing, *tags})
            )
        self._known.add(name)

    def declare_queue(self, spec: QueueSpec) -> None:
        tags = [binding_tag(spec.exchange, spec.routing_key)] if spec.exchange else []
        self._ensure(self._name(spec.name), tags)

    def delete_queue(self, name: str) -> None:
        entity = self._name(name)
        self._client.delete_queue(entity)
        self._known.discard(entity)

    def _own_in(self, name: str) -> int:
        return sum(h.queue == name for h in self._unacked.peek())

    def queue_length(self, queue: str) -> int:
        name = self._name(queue)
        detail = self._client.queue_detail(name)
        if detail is None:
            return 0
        return max(int(detail.get("message_count") or 0) - self._own_in(name), 0)

    def purge(self, queue: str) -> int:
        name = self._name(queue)
        detail = self._client.queue_detail(name)
        if detail is None:
            return 0
        count = max(int(detail.get("message_count") or 0) - self._own_in(name), 0)
        self._client.delete_queue(name)
        tags = [str(t) for t in detail.get("tags", [])]
        self._client.put_queue(name, math.ceil(self.visibility_timeout), tags)
        return count

    # -- publishing ----------------------------------------------------------------------

    def _push(self, name: str, body: str, *, deliveries: int = 0, delay: float = 0) -> str:
        fields = {DELIVERIES_FIELD: str(deliveries)} if deliveries else {}
        self._ensure(name)
        found = self._client.push(name, body, fields=fields, delay=delay)
        if found is None:  # deleted since we created it
            self._known.discard(name)
            self._ensure(name)
            found = self._client.push(name, body, fields=fields, delay=delay)
        if found is None:
            raise TransportError(f"queue {name!r} vanished while publishing")
        return found

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        name = self._name(queue)
        now = time.time()
        self._push(name, envelope.encode().decode("utf-8"), delay=visible_at(eta, now) - now)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        for queue, envelope, eta in items:
            self.publish(queue, envelope, eta=eta)

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        names = self._client.queues_tagged(binding_tag(exchange, routing_key))
        body = envelope.encode().decode("utf-8")
        for name in names:
            self._push(name, body)
        return bool(names)

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        order = [(q, self._name(q)) for q in check_queues(queues)]
        wanted = check_limit(limit)
        deadline = time.monotonic() + max(float(timeout), 0.0)
        backoff = Backoff(0.02, self.poll_interval)
        while True:
            got: list[Delivery] = []
            for queue, name in order:
                if len(got) >= wanted:
                    break
                got.extend(self._take(queue, name, min(wanted - len(got), MAX_BATCH)))
            if got:
                self._unacked.add(got)
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(backoff.next(), remaining))

    def _take(self, queue: str, name: str, batch: int) -> list[Delivery]:
        popped = self._client.pop(name, batch)
        return [d for d in (self._claim(queue, name, m) for m in popped or []) if d]

    def _claim(self, queue: str, name: str, message: Popped) -> Delivery | None:
        try:
            seen = int(message.fields.get(DELIVERIES_FIELD) or 0)
        except (TypeError, ValueError):
            seen = 0
        deliveries = seen + 1
        copy_id = self._push(
            name, message.body, deliveries=deliveries, delay=self.visibility_timeout
        )
        self._client.delete_message(name, message.id)
        handle = SlmqHandle(name, copy_id, message.body, deliveries)
        try:
            envelope = Envelope.decode(message.body)
        except ProtocolError as exc:
            logger.error("dead-lettering an undecodable message from %s: %s", queue, exc)
            self._push(entity_name(dead_letter_queue(queue), self.queue_name_prefix), message.body)
            self._client.delete_message(name, copy_id)
            return None
        return Delivery(
            queue=queue, envelope=envelope, tag=copy_id, deliveries=deliveries, handle=handle
        )

    # -- settling ------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        for handle in handles:
            self._client.delete_message(handle.queue, handle.message_id)
        self._unacked.settled(handles)

    def _send_back(self, handle: SlmqHandle) -> None:
        if self._client.delete_message(handle.queue, handle.message_id):
            self._push(handle.queue, _redelivered(handle.body), deliveries=handle.deliveries)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        [handle] = self._unacked.handles([delivery])
        if requeue:
            self._send_back(handle)
        else:
            self._client.delete_message(handle.queue, handle.message_id)
        self._unacked.settled([handle])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        [handle] = self._unacked.handles([delivery])
        dead = dead_lettered(delivery.envelope, reason)
        if self._client.delete_message(handle.queue, handle.message_id):
            dlq = entity_name(dead_letter_queue(delivery.queue), self.queue_name_prefix)
            self._push(dlq, dead.encode().decode("utf-8"))
        self._unacked.settled([handle])

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        wanted = check_seconds(seconds)
        for handle in self._unacked.handles(deliveries):
            new_id = self._push(
                handle.queue, handle.body, deliveries=handle.deliveries, delay=wanted
            )
            if self._client.delete_message(handle.queue, handle.message_id):
                handle.message_id = new_id
            else:  # it went back to the queue meanwhile: the copy would be a duplicate
                self._client.delete_message(handle.queue, new_id)

    # -- broadcast -----------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        raise NotImplementedError("the SLMQ transport does not support broadcast")

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        raise NotImplementedError("the SLMQ transport does not support broadcast")
