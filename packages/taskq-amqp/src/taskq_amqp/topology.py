"""Declaring queues, exchanges and bindings so that they agree with Celery's declarations.

RabbitMQ refuses to declare an existing queue or exchange with other flags or arguments
(``PRECONDITION_FAILED``) and closes the channel. Whatever declared it first (a Celery
worker, say) wins: taskq takes a refusal to mean "it exists", opens a new channel and goes
on. Flags follow Celery's: task exchanges and queues are durable, remote-control exchanges
(``*.pidbox``) are not, a queue with ``x-expires`` (a reply queue) is transient and
auto-deleted, ``celeryev`` is a durable topic exchange.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from taskq.contracts import QueueSpec
from taskq_amqp import client, delayed

__all__ = [
    "ChannelSource",
    "declare_queue_spec",
    "ensure_queue",
    "declare_exchange",
    "broadcast_exchange_type",
    "declare_delayed_levels",
    "bind_delayed_destination",
    "queue_counts",
]

#: Returns an open channel, opening a new one after a refusal closed the last.
ChannelSource = Callable[[], client.Channel]

#: Exchanges Celery declares with fixed types: events are a topic exchange.
KNOWN_BROADCAST_TYPES = {"celeryev": "topic"}


def _exchange_durable(name: str) -> bool:
    return not (name.endswith(".pidbox") or name.startswith("reply."))


def broadcast_exchange_type(name: str) -> str:
    return KNOWN_BROADCAST_TYPES.get(name, "fanout")


def declare_exchange(
    channels: ChannelSource, name: str, kind: str, *, durable: bool | None = None
) -> None:
    if not name:
        return  # the default exchange always exists
    if durable is None:
        durable = name == "celeryev" or _exchange_durable(name)
    # Declared before with other flags: it exists.
    with contextlib.suppress(client.PreconditionFailed):
        channels().exchange_declare(name, kind, durable=durable, auto_delete=False)


def _queue_flags(arguments: dict[str, Any]) -> tuple[bool, bool]:
    """(durable, auto_delete): a reply queue (``x-expires``) is transient, as Celery's."""
    if "x-expires" in arguments:
        return False, True
    return True, False


def declare_queue_spec(channels: ChannelSource, spec: QueueSpec) -> None:
    arguments: dict[str, Any] = dict(spec.arguments)
    if spec.max_priority is not None:
        arguments["x-max-priority"] = spec.max_priority
    if arguments.get("x-queue-type") in {"quorum", "stream"}:
        arguments.pop("x-max-priority", None)  # neither type takes priorities
    durable, auto_delete = _queue_flags(arguments)
    if arguments.get("x-queue-type") in {"quorum", "stream"}:
        durable, auto_delete = True, False  # both must be durable
    # Declared before with other arguments (by a Celery worker, say): it exists.
    with contextlib.suppress(client.PreconditionFailed):
        channels().queue_declare(
            spec.name, durable=durable, auto_delete=auto_delete, arguments=arguments
        )
    if spec.exchange:
        declare_exchange(channels, spec.exchange, spec.exchange_type)
        routing_key = spec.routing_key or spec.name
        channels().queue_bind(spec.name, spec.exchange, routing_key)


def ensure_queue(channels: ChannelSource, name: str) -> None:
    """Make sure ``name`` exists, without touching it when it does (Celery may have declared
    it as a quorum queue; a plain declaration would be refused)."""
    try:
        channels().queue_declare(name, passive=True)
    except client.NotFound:
        declare_queue_spec(channels, QueueSpec(name=name, routing_key=name))


def queue_counts(channels: ChannelSource, name: str) -> int:
    """Ready messages in ``name`` (0 when it does not exist)."""
    try:
        _, count, _ = channels().queue_declare(name, passive=True)
    except client.NotFound:
        return 0
    return int(count)


def declare_delayed_levels(channels: ChannelSource, queue_type: str) -> None:
    """The 28 levels, the delivery exchange and their bindings, all of them every time
    (once per connection): a check that they exist could see another process's layout
    half-built, and a message sent into a missing binding is dropped without a word.
    Queues a Celery worker declared with another type are left as they are."""
    for level in delayed.level_queues(queue_type):
        channels().exchange_declare(level.name, "topic", durable=True, auto_delete=False)
        # Declared by Celery with its configured queue type: it exists.
        with contextlib.suppress(client.PreconditionFailed):
            channels().queue_declare(
                level.name, durable=True, auto_delete=False, arguments=level.arguments
            )
        channels().queue_bind(level.name, level.name, level.pattern)
    channels().exchange_declare(delayed.DELIVERY_EXCHANGE, "topic", durable=True, auto_delete=False)
    for binding in delayed.exchange_bindings():
        channels().exchange_bind(binding.destination, binding.source, binding.pattern)


def bind_delayed_destination(
    channels: ChannelSource, queue: str, routing_keys: Iterable[str]
) -> None:
    """Let delayed messages for ``queue`` out of ``celery_delayed_delivery`` into it."""
    for routing_key in routing_keys:
        channels().queue_bind(
            queue, delayed.DELIVERY_EXCHANGE, delayed.destination_pattern(routing_key)
        )
