"""``pyro://host:port/name``: the Pyro transport, a client of :mod:`taskq_pyro.broker`.

Messages travel as kombu's envelope dicts, so kombu's Pyro transport and taskq share the
broker's queues. The broker does the rest: visibility timeouts and delivery counts, ETA,
dead letters, bindings and fanout (its ``taskq_*`` methods). Against kombu's own
``KombuBroker``, which has none of these, :meth:`PyroTransport.connect` fails with a
TransportError saying so.

There is no session to end when a client dies: a killed worker's messages come back when
their visibility timeout passes. A clean ``close`` gives them back at once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskq.contracts import Delivery, QueueSpec, TransportError
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    check_timeout,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq_protocol import Envelope, ProtocolError
from taskq_pyro.fanout import Subscription
from taskq_pyro.options import PyroOptions
from taskq_pyro.proxies import Proxies, broker_errors
from taskq_pyro.url import parse_url

__all__ = ["PyroTransport", "API_VERSION"]

#: The version of the broker's ``taskq_*`` methods this transport speaks.
API_VERSION = 1
#: The longest one blocking fetch call waits on the broker (it caps waits at 10 s).
_FETCH_SLICE = 5.0

Message = dict[str, Any]


def _to_wire(envelope: Envelope) -> Message:
    """kombu's envelope dict, in plain JSON types (what serpent carries unchanged)."""
    message: Message = json.loads(envelope.encode())
    return message


def _from_wire(message: Any) -> Envelope:
    return Envelope.decode(json.dumps(message))


class PyroTransport:
    schemes: tuple[str, ...] = ("pyro",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.address = parse_url(url)
        self.options = PyroOptions.read(options)
        self.visibility_timeout = self.options.visibility_timeout
        #: Who holds deliveries, so ``close`` gives back this instance's and no one else's.
        self.consumer = uuid.uuid4().hex
        self._proxies: Proxies | None = None
        #: Set by close: a fetch still running in another thread must not reconnect.
        self._closed = False
        self._subscriptions: list[Subscription] = []

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        if self._proxies is not None:
            return
        self._closed = False
        # Blocking calls wait up to _FETCH_SLICE on the broker: allow that plus the network.
        proxies = Proxies(self.address.pyroname, timeout=self.options.call_timeout + _FETCH_SLICE)
        try:
            with broker_errors("connect"):
                api = proxies.get().taskq_api()
        except AttributeError:
            proxies.close()
            raise TransportError(
                f"the Pyro object {self.address.name!r} has no taskq methods (kombu's own "
                "KombuBroker?): run `python -m taskq_pyro.broker` instead"
            ) from None
        except TransportError:
            proxies.close()
            raise
        if api != API_VERSION:
            proxies.close()
            raise TransportError(f"the Pyro broker speaks taskq API {api}, not {API_VERSION}")
        self._proxies = proxies

    def close(self) -> None:
        self._closed = True
        proxies, self._proxies = self._proxies, None
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.stop()
        if proxies is None:
            return
        try:
            with broker_errors("release"):
                proxies.get().taskq_release(self.consumer)
        except TransportError:
            pass  # the broker is gone: nothing is held there any more
        finally:
            proxies.close()

    def _broker(self) -> Any:
        if self._proxies is None and not self._closed:
            self.connect()
        proxies = self._proxies
        if proxies is None:
            raise TransportError("the Pyro transport is closed")
        return proxies.get()

    # -- queues and publishing -------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        queue = check_queue(spec.name)
        with broker_errors("declare"):
            self._broker().new_queue(queue)
            if spec.exchange:
                # x-expires is not honoured: the client deletes its reply queue when done.
                self._broker().taskq_bind(spec.exchange, spec.routing_key, queue)

    def delete_queue(self, name: str) -> None:
        with broker_errors("delete"):
            self._broker().delete(check_queue(name))

    @staticmethod
    def _eta(eta: float | None) -> float | None:
        now = time.time()
        due = visible_at(eta, now)
        return due if due > now else None

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        check_queue(queue)
        with broker_errors("publish"):
            self._broker().taskq_put(queue, _to_wire(envelope), self._eta(eta))

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        if not items:
            return
        wire = [(check_queue(q), _to_wire(e), self._eta(eta)) for q, e, eta in items]
        with broker_errors("publish"):
            self._broker().taskq_put_many(wire)

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        with broker_errors("send_direct"):
            return bool(self._broker().taskq_send_direct(exchange, routing_key, _to_wire(envelope)))

    # -- fetching and settling -------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        limit = check_limit(limit)
        deadline = time.monotonic() + check_timeout(timeout)
        while True:
            wait = min(max(deadline - time.monotonic(), 0.0), _FETCH_SLICE)
            with broker_errors("fetch"):
                fetched: Any = self._broker().taskq_fetch(
                    names, limit, wait, self.visibility_timeout, self.consumer
                )
            got = [d for d in map(self._delivery, fetched) if d is not None]
            if got or time.monotonic() >= deadline:
                return got

    def _delivery(self, item: Any) -> Delivery | None:
        queue, tag, message, deliveries = item
        try:
            envelope = _from_wire(message)
        except (ProtocolError, TypeError, ValueError):
            # Not an envelope at all: to the dead-letter queue as it is, so it cannot loop.
            with broker_errors("dead_letter"):
                self._broker().taskq_dead_letter(tag, message)
            return None
        return Delivery(
            queue=str(queue),
            envelope=envelope,
            tag=str(tag),
            deliveries=int(deliveries),
            handle=str(tag),
        )

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            with broker_errors("ack"):
                self._broker().taskq_ack([d.tag for d in deliveries])

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        with broker_errors("reject"):
            if requeue:
                self._broker().taskq_requeue(delivery.tag)
            else:
                self._broker().taskq_ack([delivery.tag])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead = dead_lettered(delivery.envelope, reason)
        with broker_errors("dead_letter"):
            self._broker().taskq_dead_letter(delivery.tag, _to_wire(dead))

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        seconds = check_seconds(seconds)
        if deliveries:
            with broker_errors("extend"):
                self._broker().taskq_extend([d.tag for d in deliveries], seconds)

    def purge(self, queue: str) -> int:
        with broker_errors("purge"):
            return int(self._broker().purge(check_queue(queue)) or 0)

    def queue_length(self, queue: str) -> int:
        with broker_errors("size"):
            return int(self._broker().size(check_queue(queue)))

    # -- fanout ----------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        with broker_errors("broadcast"):
            self._broker().taskq_broadcast(exchange, _to_wire(envelope))

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        self._broker()
        proxies = self._proxies
        if proxies is None:
            raise TransportError("the Pyro transport is closed")
        subscription = Subscription(proxies, exchange, callback)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            subscription.stop()
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

        return unsubscribe
