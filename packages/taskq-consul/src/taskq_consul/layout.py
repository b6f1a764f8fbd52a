"""Where messages live in Consul's KV store.

Ready messages sit exactly where kombu's Consul transport puts them, so Celery and taskq share
queues: ``<prefix>/<queue>/msg/<stamp>_<uuid>`` holding kombu's JSON envelope, and the queue's
marker key ``<prefix>/<queue>`` (``prefix`` is kombu's ``kombu``). Everything kombu has no
notion of lives under ``<prefix>/_taskq/``, with queue and exchange names percent-quoted so a
name holding ``/`` cannot reach into another's keys:

- ``_taskq/delayed/<queue>/<due ns>_<uuid>``: messages published with an ETA; the due time is in
  the name, so a key listing says what is due without reading a value.
- ``_taskq/unacked/<queue>/<suffix>.<token>``: a delivery in a consumer's hands, locked by that
  consumer's session (see :mod:`taskq_consul.held`).
- ``_taskq/bindings/<exchange>/<routing key>/<queue>``: direct-exchange bindings.
- ``_taskq/fanout/<exchange>/<subscriber>`` and ``_taskq/inbox/<subscriber>/...``: broadcast.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from urllib.parse import quote, unquote

__all__ = ["KeyLayout", "new_suffix", "suffix_due", "ready_order"]

_LEADING_DIGITS = re.compile(r"\d+")


class _Clock:
    """Nanoseconds since the epoch, strictly increasing within this process (FIFO order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def stamp(self, at_ns: int | None = None) -> int:
        if at_ns is not None:
            return at_ns
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_clock = _Clock()


def new_suffix(at: float | None = None) -> str:
    """A message key's last segment: a 20-digit stamp (now, or the due time ``at``) and a uuid."""
    stamp = _clock.stamp(None if at is None else int(at * 1e9))
    return f"{stamp:020d}_{uuid.uuid4().hex}"


def suffix_due(suffix: str) -> float:
    """The Unix time a delayed message's suffix names."""
    return int(suffix.split("_", 1)[0]) / 1e9


def ready_order(name: str) -> tuple[int, str]:
    """Sort key for ready messages: by the number the name starts with, then by name.

    taskq's names start with epoch nanoseconds; kombu's with its host's monotonic
    milliseconds, which sort before them (and in their own order, which kombu's plain string
    sort does not keep once the number grows a digit).
    """
    last = name.rsplit("/", 1)[-1]
    match = _LEADING_DIGITS.match(last)
    return (int(match.group()) if match else 0, last)


def _q(name: str) -> str:
    return quote(name, safe="")


class KeyLayout:
    """The key names for one ``prefix`` (kombu's ``Channel.prefix``, ``kombu`` by default)."""

    def __init__(self, prefix: str = "kombu") -> None:
        self.prefix = prefix.strip("/")
        self.private = f"{self.prefix}/_taskq/"

    # kombu's keys
    def queue_marker(self, queue: str) -> str:
        return f"{self.prefix}/{queue}"

    def ready_prefix(self, queue: str) -> str:
        return f"{self.prefix}/{queue}/msg/"

    def ready(self, queue: str, suffix: str) -> str:
        return self.ready_prefix(queue) + suffix

    def all_queues(self) -> str:
        """The prefix above every queue: a blocking query on it wakes for any of them."""
        return f"{self.prefix}/"

    # taskq's keys
    def delayed_prefix(self, queue: str) -> str:
        return f"{self.private}delayed/{_q(queue)}/"

    def unacked_prefix(self, queue: str) -> str:
        return f"{self.private}unacked/{_q(queue)}/"

    def unacked(self, queue: str, suffix: str) -> str:
        return f"{self.unacked_prefix(queue)}{suffix}.{uuid.uuid4().hex[:12]}"

    def bindings_prefix(self, exchange: str | None = None, routing_key: str | None = None) -> str:
        found = f"{self.private}bindings/"
        if exchange is not None:
            found += f"{_q(exchange)}/"
            if routing_key is not None:
                found += f"{_q(routing_key)}/"
        return found

    def binding(self, exchange: str, routing_key: str, queue: str) -> str:
        return self.bindings_prefix(exchange, routing_key) + _q(queue)

    def fanout_prefix(self, exchange: str) -> str:
        return f"{self.private}fanout/{_q(exchange)}/"

    def inbox_prefix(self, subscriber: str) -> str:
        return f"{self.private}inbox/{subscriber}/"

    def inbox(self, subscriber: str, exchange: str) -> str:
        return f"{self.inbox_prefix(subscriber)}{new_suffix()}_{_q(exchange)}"

    @staticmethod
    def last_name(key: str) -> str:
        """The unquoted last segment of a key (a queue of a binding, a subscriber)."""
        return unquote(key.rstrip("/").rsplit("/", 1)[-1])

    @staticmethod
    def inbox_exchange(key: str) -> str:
        return unquote(key.rsplit("/", 1)[-1].split("_", 2)[2])
