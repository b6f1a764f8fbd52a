"""Which topic and subscription serve a queue, created on declare and found again on lookup.

A queue is a subscription on its exchange's topic (kombu's layout, see :mod:`naming`). The
first look at a queue asks Pub/Sub for its subscription, so a queue Celery declared is served
with the topic and routing-key filter Celery gave it; the answer is kept per transport.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from dataclasses import dataclass
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from taskq.contracts import QueueSpec, dead_letter_queue
from taskq_gcpubsub import naming
from taskq_gcpubsub.clients import Publisher, Subscriber
from taskq_gcpubsub.errors import AlreadyExists, NotFound, translated
from taskq_gcpubsub.options import MAX_ACK_DEADLINE, TransportOptions

__all__ = ["Binding", "Layout"]

#: Pub/Sub keeps unacked messages at most 7 days; kombu asks for its expiration_seconds.
_RETENTION = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Binding:
    """Where one queue's messages go and come from."""

    queue: str
    topic: str
    subscription: str
    #: The routing key the subscription filters on (kombu's direct binding), or None.
    filter_key: str | None
    #: The subscription's own ack deadline, so a fetch knows whether to change it per message.
    ack_deadline: int

    @property
    def routing_key(self) -> str:
        """The ``routing_key`` attribute a message for this queue carries."""
        return self.queue if self.filter_key is None else self.filter_key

    @property
    def delayed_subscription_id(self) -> str:
        return naming.delayed_name(self.subscription.rsplit("/", 1)[1])


class Layout:
    """Creates and remembers topics and subscriptions for one transport."""

    def __init__(
        self,
        publisher: Publisher,
        subscriber: Subscriber,
        project: str,
        options: TransportOptions,
    ) -> None:
        self._publisher = publisher
        self._subscriber = subscriber
        self.project = project
        self._options = options
        self._lock = threading.Lock()
        self._bindings: dict[str, Binding] = {}
        self._topics: set[str] = set()

    # -- names -----------------------------------------------------------------------------

    def subscription_of(self, queue: str) -> str:
        entity = naming.entity_name(queue, self._options.queue_name_prefix)
        return naming.subscription_path(self.project, entity)

    def topic(self, topic_id: str) -> str:
        return naming.topic_path(self.project, topic_id)

    def delayed_paths(self, binding: Binding) -> tuple[str, str]:
        name = binding.delayed_subscription_id
        return naming.topic_path(self.project, name), naming.subscription_path(self.project, name)

    # -- topics ----------------------------------------------------------------------------

    def ensure_topic(self, topic: str) -> str:
        if topic in self._topics:
            return topic
        with translated("create_topic"), contextlib.suppress(AlreadyExists):
            self._publisher.create_topic(request={"name": topic})
        with self._lock:
            self._topics.add(topic)
        return topic

    # -- queues ----------------------------------------------------------------------------

    def declare(self, spec: QueueSpec) -> Binding:
        """Create the queue's topic and subscription (keeping an existing subscription's)."""
        topic = self.ensure_topic(self.topic(spec.exchange or spec.name))
        filter_key = (spec.routing_key or spec.name) if spec.exchange else None
        subscription = self.subscription_of(spec.name)
        dead_letter_topic = self._dead_letter_topic(spec)
        request: dict[str, Any] = {
            "name": subscription,
            "topic": topic,
            "ack_deadline_seconds": self._options.subscription_deadline,
            "message_retention_duration": _RETENTION,
            "expiration_policy": self._expiration(),
        }
        if filter_key is not None:
            request["filter"] = naming.routing_filter(filter_key)
        if dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": self._options.max_delivery_attempts,
            }
        with translated("create_subscription"):
            try:
                self._subscriber.create_subscription(request=request)
            except AlreadyExists:
                found = self._lookup_remote(spec.name)
                if found is not None:
                    if dead_letter_topic is not None:
                        self._add_dead_letter_policy(subscription, dead_letter_topic)
                    return found
                return self.declare(spec)  # deleted meanwhile: create it again
        binding = Binding(
            queue=spec.name,
            topic=topic,
            subscription=subscription,
            filter_key=filter_key,
            ack_deadline=self._options.subscription_deadline,
        )
        with self._lock:
            self._bindings[spec.name] = binding
        return binding

    def lookup(self, queue: str) -> Binding | None:
        """The queue's binding, or None when its subscription does not exist."""
        with self._lock:
            found = self._bindings.get(queue)
        return found if found is not None else self._lookup_remote(queue)

    def for_publish(self, queue: str) -> Binding:
        """The queue's binding, declaring the queue (its own topic) when it does not exist."""
        return self.lookup(queue) or self.declare(QueueSpec(name=queue))

    def forget(self, queue: str) -> None:
        with self._lock:
            self._bindings.pop(queue, None)

    def delete(self, queue: str) -> Binding | None:
        """Delete the queue's subscription and its delayed messages; the binding it had."""
        binding = self.lookup(queue)
        self.forget(queue)
        subscription = self.subscription_of(queue)
        delayed = naming.delayed_name(subscription.rsplit("/", 1)[1])
        delayed_topic = naming.topic_path(self.project, delayed)
        delayed_subscription = naming.subscription_path(self.project, delayed)
        for path in (subscription, delayed_subscription):
            with translated("delete_subscription"), contextlib.suppress(NotFound):
                self._subscriber.delete_subscription(request={"subscription": path})
        with translated("delete_topic"), contextlib.suppress(NotFound):
            self._publisher.delete_topic(request={"topic": delayed_topic})
        with self._lock:
            self._topics.discard(delayed_topic)
        return binding

    def ensure_delayed(self, binding: Binding) -> str:
        """Create the queue's delayed topic and subscription; the topic's path."""
        topic, subscription = self.delayed_paths(binding)
        if topic in self._topics:
            return topic
        self.ensure_topic(topic)
        request: dict[str, Any] = {
            "name": subscription,
            "topic": topic,
            "ack_deadline_seconds": MAX_ACK_DEADLINE,
            "message_retention_duration": _RETENTION,
            "expiration_policy": self._expiration(),
        }
        with translated("create_subscription"), contextlib.suppress(AlreadyExists):
            self._subscriber.create_subscription(request=request)
        return topic

    # -- helpers ---------------------------------------------------------------------------

    def _expiration(self) -> dict[str, Any]:
        seconds = self._options.expiration_seconds
        return {"ttl": datetime.timedelta(seconds=seconds)} if seconds else {}

    def _dead_letter_topic(self, spec: QueueSpec) -> str | None:
        """Where Pub/Sub itself sends a message after ``max_delivery_attempts``.

        The policy is what makes Pub/Sub count deliveries. Dead-letter queues and expiring
        (reply) queues get none: nothing is counted there.
        """
        if not self._options.max_delivery_attempts or spec.name.endswith(".dlq"):
            return None
        if "x-expires" in spec.arguments:
            return None
        dlq = dead_letter_queue(spec.name)
        return (self.lookup(dlq) or self.declare(QueueSpec(name=dlq))).topic

    def _add_dead_letter_policy(self, subscription: str, topic: str) -> None:
        with translated("get_subscription"):
            current = self._subscriber.get_subscription(request={"subscription": subscription})
        if current.dead_letter_policy.dead_letter_topic:
            return
        current.dead_letter_policy.dead_letter_topic = topic
        current.dead_letter_policy.max_delivery_attempts = self._options.max_delivery_attempts
        with translated("update_subscription"):
            self._subscriber.update_subscription(
                request={
                    "subscription": current,
                    "update_mask": FieldMask(paths=["dead_letter_policy"]),
                }
            )

    def _lookup_remote(self, queue: str) -> Binding | None:
        subscription = self.subscription_of(queue)
        with translated("get_subscription"):
            try:
                found = self._subscriber.get_subscription(request={"subscription": subscription})
            except NotFound:
                return None
        binding = Binding(
            queue=queue,
            topic=str(found.topic),
            subscription=subscription,
            filter_key=naming.routing_key_of_filter(str(found.filter)),
            ack_deadline=int(found.ack_deadline_seconds),
        )
        with self._lock:
            self._bindings[queue] = binding
        return binding
