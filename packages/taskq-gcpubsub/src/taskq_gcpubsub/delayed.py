"""Delayed messages: Pub/Sub has no per-message delay, so they wait on a topic of their own.

``publish(queue, envelope, eta=t)`` puts the message on the queue's *delayed* topic
(``<subscription id>-taskq-delayed``) with the attribute ``x-taskq-eta``. Every fetch of the
queue first pulls that subscription:

- a message that is due is published to the queue's topic (an ordinary, fresh message, its
  delivery count starting at 1) and then acknowledged on the delayed subscription;
- one that is not due is left leased with an ack deadline of ``ceil(eta - now)`` seconds, at
  most 600: Pub/Sub hides it until then and the next fetch after that looks again. A message
  is never moved early; one due in a day is looked at once every 10 minutes, and never held in
  a worker's memory.

The move publishes before it acknowledges, so a crash in between delivers the message twice
(at least once), never zero times. Only taskq fetches move delayed messages: a queue whose
only consumers are Celery workers never sees taskq's delayed messages arrive.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from taskq_gcpubsub.acking import acknowledge, pull_now, set_deadline
from taskq_gcpubsub.clients import Publisher, Subscriber
from taskq_gcpubsub.errors import translated
from taskq_gcpubsub.layout import Binding, Layout

__all__ = ["ETA_ATTRIBUTE", "DelayedMover", "eta_of"]

#: The attribute holding a delayed message's due time (Unix seconds, as text).
ETA_ATTRIBUTE = "x-taskq-eta"
#: Delayed messages one fetch looks at per queue.
_BATCH = 100


def eta_of(attributes: Mapping[str, str]) -> float:
    try:
        return float(attributes.get(ETA_ATTRIBUTE, "0"))
    except ValueError:
        return 0.0  # unreadable: due now rather than never


class DelayedMover:
    def __init__(
        self,
        publisher: Publisher,
        subscriber: Subscriber,
        layout: Layout,
        *,
        batch: int,
        publish_timeout: float,
    ) -> None:
        self._publisher = publisher
        self._subscriber = subscriber
        self._layout = layout
        self._batch = batch
        self._publish_timeout = publish_timeout

    def move_due(self, binding: Binding) -> None:
        """Publish the due delayed messages of one queue; hide the others until their eta."""
        _, subscription = self._layout.delayed_paths(binding)
        received = pull_now(self._subscriber, subscription, _BATCH)
        if not received:
            return
        now = time.time()
        due: list[str] = []
        later: defaultdict[int, list[str]] = defaultdict(list)
        futures: list[Any] = []
        for item in received:
            eta = eta_of(item.message.attributes)
            if eta <= now:
                attributes = {
                    k: v for k, v in item.message.attributes.items() if k != ETA_ATTRIBUTE
                }
                futures.append(
                    self._publisher.publish(binding.topic, item.message.data, **attributes)
                )
                due.append(item.ack_id)
            else:
                later[math.ceil(eta - now)].append(item.ack_id)
        with translated("publish"):
            for future in futures:
                future.result(timeout=self._publish_timeout)
        acknowledge(self._subscriber, subscription, due, self._batch)
        for seconds, ack_ids in later.items():
            set_deadline(self._subscriber, subscription, ack_ids, seconds, self._batch)
