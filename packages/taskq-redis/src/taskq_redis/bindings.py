"""kombu's routing tables in Redis: written when a queue is declared, read to restore messages.

kombu keeps no exchange on the server; a queue bound to an exchange adds the member
``routing_key + sep + pattern + sep + queue`` to the set ``_kombu.binding.<exchange>``
(``pattern`` is a regular expression for topic exchanges, empty otherwise). Publishers to a
named exchange and kombu's restore of an unacknowledged message read that set to find the
queues. Since kombu 5.7 a queue without ``x-expires`` is also added to
``_kombu.binding_permanent.<exchange>``, which keeps kombu's sweeper from deleting the table,
and a queue with ``x-expires`` pushes the exchange's deadline in ``_kombu.binding_deadlines``
instead (the sweeper deletes tables whose deadline passed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from taskq.contracts import QueueSpec
from taskq_redis.keys import KeyLayout

__all__ = [
    "binding_member",
    "binding_ttl_ms",
    "expires_ms",
    "match_queues",
    "topic_pattern",
]

logger = logging.getLogger("taskq_redis.transport")

#: kombu's floor and factor for an expiring queue's table lifetime (``MIN_BINDING_TTL``,
#: ``BINDING_EXPIRES_FACTOR``), so a stalled consumer keeps its routing for an hour.
MIN_BINDING_TTL_MS = 60 * 60 * 1000
BINDING_EXPIRES_FACTOR = 2

_TOPIC_WILDCARDS = {"*": r"[^\.]+", "#": r".*?"}


def topic_pattern(routing_key: str) -> str:
    """The regular expression kombu stores for a topic binding (``key_to_pattern``): every
    character that is not alphanumeric (or ``.``, ``#``, ``*``) escaped, words joined by
    ``\\.``, ``*`` one word, ``#`` any words."""
    escaped = "".join(
        c if c.isalnum() or c in ".#*" else ("\\000" if c == "\000" else "\\" + c)
        for c in routing_key
    )
    words = (_TOPIC_WILDCARDS.get(word, word) for word in escaped.split("."))
    return "^" + r"\.".join(words) + "$"


def binding_member(layout: KeyLayout, spec: QueueSpec) -> str:
    pattern = topic_pattern(spec.routing_key) if spec.exchange_type == "topic" else ""
    return layout.binding_member(spec.routing_key, pattern, spec.name)


def expires_ms(spec: QueueSpec) -> int | None:
    """The queue's ``x-expires`` in milliseconds, as kombu reads it (None when absent/bad)."""
    value = spec.arguments.get("x-expires")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def binding_ttl_ms(expires: int) -> int:
    return max(expires * BINDING_EXPIRES_FACTOR, MIN_BINDING_TTL_MS)


def match_queues(members: Iterable[bytes | str], sep: str, routing_key: str) -> list[str]:
    """The queues a routing table sends ``routing_key`` to.

    A member with a pattern is a topic binding and matches by the pattern; one without is a
    direct (or fanout) binding and matches the exact key, as kombu's default ``direct`` lookup
    does for an exchange its process never declared.
    """
    found: dict[str, None] = {}
    for raw in members:
        member = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        parts = member.split(sep)
        if len(parts) != 3:
            continue
        key, pattern, queue = parts
        if pattern:
            try:
                if re.match(pattern, routing_key):
                    found[queue] = None
            except re.error:
                logger.warning("ignoring binding %r: %r is not a valid pattern", member, pattern)
        elif key == routing_key:
            found[queue] = None
    return list(found)
