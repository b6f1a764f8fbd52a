"""Queue names and binding tags as the SoftLayer Message Queue service accepts them.

The service allows letters, digits and ``_`` in names; kombu's SLMQ transport replaces every
other punctuation character with ``_`` (``taskq-test.q`` becomes ``taskq_test_q``) after adding
its ``queue_name_prefix``, and taskq does exactly the same so both reach one queue.
Direct-exchange bindings are queue *tags* (the API lists queues by tag), one per
``(exchange, routing key)``, hashed to fit the characters tags allow.
"""

from __future__ import annotations

import hashlib
import string

__all__ = ["entity_name", "binding_tag"]

_REPLACE = {ord(c): ord("_") for c in string.punctuation if c != "_"}


def entity_name(name: str, prefix: str = "") -> str:
    return (prefix + name).translate(_REPLACE)


def binding_tag(exchange: str, routing_key: str) -> str:
    digest = hashlib.sha256(f"{exchange}\0{routing_key}".encode()).hexdigest()[:24]
    return f"taskq_bind_{digest}"
