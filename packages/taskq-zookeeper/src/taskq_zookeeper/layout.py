"""Where everything lives in the znode tree.

Queues are laid out exactly as kombu's ZooKeeper transport (kazoo's ``Queue`` recipe) lays
them out, so Celery and taskq read and write the same queues:

- ``<root>/<queue>``: one persistent znode per queue; each message is a persistent sequential
  child ``entry-PPP-NNNNNNNNNN`` holding kombu's JSON envelope. ``PPP`` is ``9 - priority``
  (0-9, zero-padded to three digits) so that sorting the children by name serves the highest
  priority first, then publish order (the sequence number ZooKeeper appends).

What kombu does not have lives under ``<root>/_taskq`` (queue and exchange names are
percent-encoded there, so any name is one znode):

- ``taken/<queue>/<entry>``: an *ephemeral* claim on a message a taskq consumer holds. It
  vanishes when the consumer's session dies, and the message is then free again.
- ``delayed/<queue>/dTTTTTTTTTTTTTTT-NNNNNNNNNN``: a message with an ETA (milliseconds since
  the epoch), moved into the queue by the first fetch that finds it due.
- ``bindings/<exchange>/<routing key>/<queue>`` and ``bound/<queue>/<exchange> <key>``: direct
  exchange bindings, and the same per queue so deleting a queue finds its bindings.
- ``fanout/<exchange>/mTTTTTTTTTTTTT-NNNNNNNNNN``: broadcasts, read by every subscriber that
  watches the exchange, pruned after ``fanout_ttl``.
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote, unquote

__all__ = ["Layout", "entry_prefix", "delayed_prefix", "delayed_due", "sequence_of"]

MAX_PRIORITY = 9


def _name(value: str) -> str:
    return quote(value, safe="")


def entry_prefix(priority: int) -> str:
    """The child name prefix kombu gives a message of ``priority`` (ZooKeeper adds the rest)."""
    clamped = max(0, min(priority, MAX_PRIORITY))
    return f"entry-{MAX_PRIORITY - clamped:03d}-"


def delayed_prefix(eta: float) -> str:
    return f"d{round(eta * 1000):015d}-"


def delayed_due(name: str) -> float:
    """The ETA (Unix seconds) in a delayed child's name."""
    return int(name[1:16]) / 1000


def sequence_of(name: str) -> int:
    """The sequence number ZooKeeper appended to a sequential child's name."""
    return int(name[-10:])


class Layout:
    def __init__(self, root: str) -> None:
        self.root = root
        self.area = posixpath.join(root, "_taskq")

    def queue(self, queue: str) -> str:
        # kombu joins the raw name (os.path.join), so a queue name with "/" is not supported.
        return posixpath.join(self.root, queue)

    def entry(self, queue: str, name: str) -> str:
        return f"{self.queue(queue)}/{name}"

    def taken(self, queue: str) -> str:
        return f"{self.area}/taken/{_name(queue)}"

    def claim(self, queue: str, name: str) -> str:
        return f"{self.taken(queue)}/{name}"

    def delayed(self, queue: str) -> str:
        return f"{self.area}/delayed/{_name(queue)}"

    def binding_keys(self, exchange: str, routing_key: str) -> str:
        return f"{self.area}/bindings/{_name(exchange)}/{_name(routing_key)}"

    def binding(self, exchange: str, routing_key: str, queue: str) -> str:
        return f"{self.binding_keys(exchange, routing_key)}/{_name(queue)}"

    def bound(self, queue: str) -> str:
        return f"{self.area}/bound/{_name(queue)}"

    def bound_entry(self, queue: str, exchange: str, routing_key: str) -> str:
        return f"{self.bound(queue)}/{_name(exchange)} {_name(routing_key)}"

    @staticmethod
    def parse_bound(name: str) -> tuple[str, str]:
        """``(exchange, routing_key)`` from a ``bound/<queue>`` child's name."""
        exchange, _, key = name.partition(" ")
        return unquote(exchange), unquote(key)

    @staticmethod
    def queue_of_binding(name: str) -> str:
        return unquote(name)

    def fanout(self, exchange: str) -> str:
        return f"{self.area}/fanout/{_name(exchange)}"
