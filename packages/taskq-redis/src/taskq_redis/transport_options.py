"""``broker_transport_options`` for the Redis transport, under kombu's names.

Celery users move their options over as they are, so every name is kombu's where kombu has one,
options this transport does not use are ignored (connection options are read by
:mod:`taskq_redis.connection`), and a known option with a wrong value fails at once, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskq.exceptions import ImproperlyConfigured
from taskq_redis.connection import BROKER_OPTIONS
from taskq_redis.direct import DEFAULT_MAX_AGE, DEFAULT_WINDOW
from taskq_redis.keys import DEFAULT_PRIORITY_STEPS, DEFAULT_SEP
from taskq_redis.options import read_bool, read_int, read_seconds, read_str

__all__ = ["TransportOptions", "QUEUE_ORDER_STRATEGIES"]

#: ``priority``: the queues in the order given (earlier first, taskq's contract);
#: ``round_robin``: kombu's default, the queue that just served moves to the back;
#: ``sorted``: alphabetical.
QUEUE_ORDER_STRATEGIES = ("priority", "round_robin", "sorted")


@dataclass(frozen=True, slots=True)
class TransportOptions:
    visibility_timeout: float = 3600.0
    global_keyprefix: str = ""
    priority_steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    sep: str = DEFAULT_SEP
    unacked_key: str = "unacked"
    unacked_index_key: str = "unacked_index"
    unacked_mutex_key: str = "unacked_mutex"
    unacked_mutex_expire: float = 300.0
    #: How many expired deliveries one restore round moves back (kombu: all of them).
    unacked_restore_limit: int | None = None
    #: ``"/{db}."`` (kombu's default), ``""`` (kombu 3's unprefixed channels) or a string.
    fanout_prefix: str = "/{db}."
    fanout_patterns: bool = True
    queue_order_strategy: str = "priority"
    #: Keep ``eta`` messages in Redis until due (False: publish them at once, as Celery does;
    #: only for clients whose queues Celery workers alone consume).
    delayed_delivery: bool = True
    #: Where a restored message goes when its exchange's routing table names no queue.
    deadletter_queue: str | None = None
    #: Wait for Redis's reply to every single publish (kombu's behaviour); by default replies
    #: are read as they come (see :mod:`taskq_redis.direct`), as taskq-amqp reads confirms.
    confirm_publish: bool = False
    #: Publishes left unanswered, and the age of the oldest, before a publish waits.
    confirm_window: int = DEFAULT_WINDOW
    confirm_max_age: float = DEFAULT_MAX_AGE

    @classmethod
    def read(cls, options: Mapping[str, Any], setting: str = BROKER_OPTIONS) -> TransportOptions:
        if options.get("ack_emulation") is False:
            raise ImproperlyConfigured(
                setting,
                "ack_emulation=False is not supported: taskq acknowledges every message, so a "
                "worker that dies never loses one",
            )
        strategy = read_str(options, "queue_order_strategy", "priority", setting) or "priority"
        if strategy not in QUEUE_ORDER_STRATEGIES:
            raise ImproperlyConfigured(
                setting,
                f"queue_order_strategy must be one of {', '.join(QUEUE_ORDER_STRATEGIES)}, "
                f"got {strategy!r}",
            )
        sep = read_str(options, "sep", DEFAULT_SEP, setting) or DEFAULT_SEP
        restore_limit = options.get("unacked_restore_limit")
        return cls(
            visibility_timeout=read_seconds(options, "visibility_timeout", 3600.0, setting)
            or 3600.0,
            global_keyprefix=read_str(options, "global_keyprefix", "", setting) or "",
            priority_steps=_priority_steps(options.get("priority_steps"), setting),
            sep=sep,
            unacked_key=_key_name(options, "unacked_key", "unacked", setting),
            unacked_index_key=_key_name(options, "unacked_index_key", "unacked_index", setting),
            unacked_mutex_key=_key_name(options, "unacked_mutex_key", "unacked_mutex", setting),
            unacked_mutex_expire=read_seconds(options, "unacked_mutex_expire", 300.0, setting)
            or 300.0,
            unacked_restore_limit=None
            if restore_limit is None
            else read_int(options, "unacked_restore_limit", 0, setting, minimum=1),
            fanout_prefix=_fanout_prefix(options.get("fanout_prefix"), setting),
            fanout_patterns=read_bool(options, "fanout_patterns", True, setting),
            queue_order_strategy=strategy,
            delayed_delivery=read_bool(options, "delayed_delivery", True, setting),
            deadletter_queue=read_str(options, "deadletter_queue", None, setting),
            confirm_publish=read_bool(options, "confirm_publish", False, setting),
            confirm_window=read_int(options, "confirm_window", DEFAULT_WINDOW, setting, minimum=1),
            confirm_max_age=read_seconds(options, "confirm_max_age", DEFAULT_MAX_AGE, setting)
            or DEFAULT_MAX_AGE,
        )


def _key_name(options: Mapping[str, Any], key: str, default: str, setting: str) -> str:
    value = read_str(options, key, default, setting)
    if not value:
        raise ImproperlyConfigured(setting, f"{key} must be a non-empty key name")
    return value


def _priority_steps(value: object, setting: str) -> tuple[int, ...]:
    if value is None:
        return DEFAULT_PRIORITY_STEPS
    if isinstance(value, (list, tuple)):
        items: list[object] = list(value)  # pyright: ignore[reportUnknownArgumentType]
        steps: list[int] = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 9:
                break
            steps.append(item)
        else:
            if steps and steps == sorted(set(steps)) and steps[0] == 0:
                return tuple(steps)
    raise ImproperlyConfigured(
        setting,
        "priority_steps must be an ascending list of distinct priorities 0-9 starting at 0 "
        f"(kombu's default is [0, 3, 6, 9]), got {value!r}",
    )


def _fanout_prefix(value: object, setting: str) -> str:
    if value is None or value is True:
        return "/{db}."
    if value is False:
        return ""
    if isinstance(value, str):
        return value
    raise ImproperlyConfigured(
        setting, f"fanout_prefix must be true, false or a prefix string, got {value!r}"
    )
