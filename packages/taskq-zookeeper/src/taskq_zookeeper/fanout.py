"""Broadcasts: a log of sequential znodes per exchange that each subscriber watches.

kombu's ZooKeeper transport has no fanout; this is taskq's own, for remote control and events
between taskq processes. A broadcast is a persistent sequential child of
``_taskq/fanout/<exchange>``; a subscriber remembers the highest sequence number it has seen
(those present when it subscribed count as seen, so nothing older is replayed) and reads the
newer children whenever the watch fires. At most once: a subscriber that is slower than
``fanout_ttl`` to look may miss a broadcast the pruning removed. The broadcaster prunes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from taskq_protocol import Envelope, ProtocolError
from taskq_zookeeper.layout import sequence_of
from taskq_zookeeper.znodes import Znodes

__all__ = ["Subscription", "broadcast_prefix", "expired_broadcasts"]

logger = logging.getLogger("taskq_zookeeper.fanout")


def broadcast_prefix(now: float) -> str:
    return f"m{round(now * 1000):013d}-"


def expired_broadcasts(names: list[str], before: float) -> list[str]:
    cutoff = round(before * 1000)
    return [name for name in names if name.startswith("m") and int(name[1:14]) < cutoff]


class Subscription:
    """One ``subscribe`` call: delivers each newer broadcast to ``callback`` once."""

    def __init__(self, znodes: Znodes, path: str, callback: Callable[[Envelope], None]) -> None:
        self._znodes = znodes
        self._path = path
        self._callback = callback
        self._lock = threading.Lock()
        self._seen = -1
        self._started = False
        self.active = True

    def start(self) -> None:
        self._znodes.ensure_path(self._path)
        # The watch calls back at once with the current children: those mark the start.
        self._znodes.watch_children(self._path, self._on_change)

    def stop(self) -> None:
        self.active = False

    def _on_change(self, children: list[str]) -> bool:
        if not self.active:
            return False  # ends the watch
        with self._lock:
            names = sorted((n for n in children if n.startswith("m")), key=sequence_of)
            if not self._started:
                self._started = True
                self._seen = max((sequence_of(n) for n in names), default=-1)
                return True
            fresh = [n for n in names if sequence_of(n) > self._seen]
            if not fresh:
                return True
            self._seen = sequence_of(fresh[-1])
            found = self._znodes.get_many([f"{self._path}/{name}" for name in fresh])
        for item in found:
            if item is None or not self.active:
                continue  # pruned before we looked
            self._deliver(item[0])
        return self.active

    def _deliver(self, data: bytes) -> None:
        try:
            envelope = Envelope.decode(data)
        except ProtocolError:
            logger.warning("dropped an undecodable broadcast on %s", self._path)
            return
        try:
            self._callback(envelope)
        except Exception:
            logger.exception("a broadcast subscriber on %s raised", self._path)
