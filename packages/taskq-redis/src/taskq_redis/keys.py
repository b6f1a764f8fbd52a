"""The names of every Redis key and pub/sub channel, laid out exactly as kombu lays them out.

A Celery worker and a taskq worker share one Redis only if they agree on names, so this module
is the single place that spells them (reference §1.8, ``kombu/transport/redis.py``):

- a queue is a list per priority step: ``<queue>`` for step 0 and ``<queue><sep><step>`` for
  the others (``sep`` is ``"\\x06\\x16"``, steps ``[0, 3, 6, 9]``); step 0 is served first;
- unacknowledged deliveries: the hash ``unacked`` (tag → ``[envelope, exchange,
  routing_key]``), the sorted set ``unacked_index`` (tag → delivery time) and the lock
  ``unacked_mutex`` held while restoring;
- routing tables ``_kombu.binding.<exchange>`` and, since kombu 5.7, their copies for queues
  that never expire ``_kombu.binding_permanent.<exchange>`` and the deadlines of the others
  ``_kombu.binding_deadlines``;
- fanout exchanges are pub/sub channels ``/<db>.<exchange>`` (``/<db>.<exchange>/<routing
  key>`` when the message has a routing key and ``fanout_patterns`` is on).

``global_keyprefix`` goes in front of every key and channel, as kombu's prefixing client puts
it in front of every key it sends (lists, hashes, sets, the restore lock, pub/sub channels).

taskq's own keys, which kombu never reads, start with ``_taskq.``: the delayed messages of a
queue (``_taskq.delayed.<queue>``, a sorted set by due time), the delivery counts
(``_taskq.deliveries``, a hash by the envelope's ``delivery_tag``) and a queue's wake-up list
(``_taskq.wake.<queue>``, at most one element: taskq's publish pushes it so that an idle taskq
consumer wakes without taking the message itself) with the marker saying such a consumer is
waiting (``_taskq.waiting.<queue>``, expiring).
"""

from __future__ import annotations

import re
from bisect import bisect
from collections.abc import Sequence

__all__ = ["KeyLayout", "message_priority", "DEFAULT_SEP", "DEFAULT_PRIORITY_STEPS"]

DEFAULT_SEP = "\x06\x16"
DEFAULT_PRIORITY_STEPS = (0, 3, 6, 9)
#: kombu clamps a message's priority into this range (``virtual.Channel.min/max_priority``).
MIN_PRIORITY, MAX_PRIORITY = 0, 9

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def message_priority(properties: dict[str, object]) -> int:
    """The priority kombu reads from a message: ``int(properties["priority"])`` clamped to
    0-9, or 0 when it is missing or not a number (``Channel._get_message_priority``)."""
    value = properties.get("priority")
    if isinstance(value, int):
        number = value
    elif isinstance(value, (float, str, bytes)):
        try:
            number = int(value)
        except ValueError:
            return MIN_PRIORITY
    else:
        return MIN_PRIORITY
    return max(min(number, MAX_PRIORITY), MIN_PRIORITY)


class KeyLayout:
    """Key and channel names for one database and one set of transport options."""

    def __init__(
        self,
        *,
        prefix: str = "",
        sep: str = DEFAULT_SEP,
        priority_steps: Sequence[int] = DEFAULT_PRIORITY_STEPS,
        unacked: str = "unacked",
        unacked_index: str = "unacked_index",
        unacked_mutex: str = "unacked_mutex",
        fanout_prefix: str = "/{db}.",
        fanout_patterns: bool = True,
        db: int = 0,
    ) -> None:
        self.prefix = prefix
        self.sep = sep
        self.priority_steps = tuple(priority_steps)
        self.unacked = prefix + unacked
        self.unacked_index = prefix + unacked_index
        self.unacked_mutex = prefix + unacked_mutex
        self.deliveries = prefix + "_taskq.deliveries"
        self.binding_deadlines = prefix + "_kombu.binding_deadlines"
        self.fanout_prefix = fanout_prefix.format(db=db)
        self.fanout_patterns = fanout_patterns

    # -- queues -----------------------------------------------------------------------------

    def step_for(self, priority: int) -> int:
        """The step a priority falls in: the highest step <= priority (kombu's ``priority``)."""
        steps = self.priority_steps
        return steps[bisect(steps, priority) - 1]

    def list_for(self, queue: str, priority: int) -> str:
        """The list a message of this priority goes to (kombu's ``_q_for_pri``)."""
        step = self.step_for(priority)
        name = f"{queue}{self.sep}{step}" if step else queue
        return self.prefix + name

    def step_suffix(self, priority: int) -> str:
        """What follows the queue's name in ``list_for(queue, priority)`` ("" for step 0)."""
        step = self.step_for(priority)
        return f"{self.sep}{step}" if step else ""

    def lists(self, queue: str) -> list[str]:
        """The queue's lists, in the order they are served (one per priority step)."""
        return [self._list_of_step(queue, step) for step in self.priority_steps]

    def step_index(self, priority: int) -> int:
        """The position of ``list_for(queue, priority)`` in ``lists(queue)``."""
        return self.priority_steps.index(self.step_for(priority))

    def _list_of_step(self, queue: str, step: int) -> str:
        return self.prefix + (f"{queue}{self.sep}{step}" if step else queue)

    def delayed(self, queue: str) -> str:
        """The sorted set holding the queue's messages until they are due."""
        return f"{self.prefix}_taskq.delayed.{queue}"

    def wake(self, queue: str) -> str:
        """The list an idle taskq consumer blocks on with the queue's lists: a publish by taskq
        pushes a token there, so the consumer wakes without popping the message."""
        return f"{self.prefix}_taskq.wake.{queue}"

    def waiting(self, queue: str) -> str:
        """Set (expiring) while a taskq consumer of the queue is idle: publishes push a wake-up
        token only then, so a queue nobody of taskq's consumes gets no extra key."""
        return f"{self.prefix}_taskq.waiting.{queue}"

    # -- routing tables ---------------------------------------------------------------------

    def binding(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding.{exchange}"

    def binding_permanent(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding_permanent.{exchange}"

    def binding_member(self, routing_key: str, pattern: str, queue: str) -> str:
        return self.sep.join((routing_key, pattern, queue))

    # -- fanout -----------------------------------------------------------------------------

    def publish_channel(self, exchange: str, routing_key: str) -> str:
        """Where kombu publishes a fanout message (``Channel._get_publish_topic``)."""
        if routing_key and self.fanout_patterns:
            return f"{self.prefix}{self.fanout_prefix}{exchange}/{routing_key}"
        return f"{self.prefix}{self.fanout_prefix}{exchange}"

    def subscribe_patterns(self, exchange: str) -> tuple[str, ...]:
        """PSUBSCRIBE patterns that receive every message of the exchange, with or without a
        routing key (kombu's subscribers bind ``""`` or ``"#"``, which is ``*`` here)."""
        base = _GLOB_SPECIAL.sub(r"\\\1", f"{self.prefix}{self.fanout_prefix}{exchange}")
        if self.fanout_patterns:
            return (base, base + "/*")
        return (base,)
