"""``subscribe``: one Pub/Sub subscription per subscriber on the fanout exchange's topic.

kombu binds each consumer of a fanout exchange with a subscription of its own on the topic
named after the exchange, and so does taskq. A thread pulls it, acknowledges what came *before*
calling back (at most once, as a broadcast is), and ``unsubscribe`` stops the thread and
deletes the subscription. Subscriptions keep messages 10 minutes (Pub/Sub's minimum) and
expire after a day without a puller (Pub/Sub's minimum), so one left by a crashed process goes
away by itself.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable

from taskq.contracts import TransportError
from taskq_gcpubsub.acking import acknowledge, pull_now
from taskq_gcpubsub.clients import Subscriber
from taskq_gcpubsub.errors import NotFound, translated
from taskq_protocol import Envelope, ProtocolError

__all__ = ["FanoutSubscription"]

logger = logging.getLogger("taskq_gcpubsub.fanout")


class FanoutSubscription:
    def __init__(
        self,
        subscriber: Subscriber,
        topic: str,
        subscription: str,
        callback: Callable[[Envelope], None],
        *,
        polling_interval: float,
    ) -> None:
        self._subscriber = subscriber
        self.subscription = subscription
        self._callback = callback
        self._interval = polling_interval
        self._stopped = threading.Event()
        with translated("create_subscription"):
            subscriber.create_subscription(
                request={
                    "name": subscription,
                    "topic": topic,
                    "ack_deadline_seconds": 10,
                    "message_retention_duration": datetime.timedelta(minutes=10),
                    "expiration_policy": {"ttl": datetime.timedelta(days=1)},
                }
            )
        self._thread = threading.Thread(
            target=self._run, name=f"taskq-gcpubsub-fanout-{subscription}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        try:
            with translated("delete_subscription"):
                self._subscriber.delete_subscription(request={"subscription": self.subscription})
        except (NotFound, TransportError):
            pass  # gone already, or it expires by itself

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                received = pull_now(self._subscriber, self.subscription, 100)
                if received:
                    acknowledge(
                        self._subscriber, self.subscription, [r.ack_id for r in received], 1000
                    )
            except TransportError as exc:
                logger.warning("Pulling broadcasts from %s failed: %s", self.subscription, exc)
                self._stopped.wait(1.0)
                continue
            for item in received:
                if self._stopped.is_set():
                    return
                try:
                    envelope = Envelope.decode(item.message.data)
                except ProtocolError as exc:
                    logger.warning("Dropped an unreadable broadcast: %s", exc)
                    continue
                try:
                    self._callback(envelope)
                except Exception:
                    logger.exception("A broadcast callback failed")
            if not received:
                self._stopped.wait(self._interval)
