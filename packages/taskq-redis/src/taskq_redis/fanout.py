"""Fanout exchanges over Redis pub/sub, as kombu does them: at most once, never stored.

One :class:`FanoutListener` per transport owns a pub/sub connection and a thread reading it.
:meth:`~FanoutListener.subscribe` returns once Redis has confirmed the subscription, so a
broadcast sent after it returns is received. When the connection drops, the thread reconnects
with backoff and redis-py subscribes again to every pattern on the new connection; broadcasts
sent while it was away are lost, as they are for kombu's subscribers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from taskq.contracts import TransportError
from taskq_protocol import Envelope, ProtocolError

__all__ = ["FanoutListener"]

logger = logging.getLogger("taskq_redis.transport")

Callback = Callable[[Envelope], None]

#: How long one read waits, which bounds how long stop() waits for the thread.
_READ_TIMEOUT = 0.2
_RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)


class _Subscription:
    """One subscriber: its callback and the patterns that feed it."""

    __slots__ = ("callback", "patterns")

    def __init__(self, patterns: tuple[str, ...], callback: Callback) -> None:
        self.patterns = patterns
        self.callback = callback


class FanoutListener:
    """Pattern subscriptions on one pub/sub connection, served by one daemon thread."""

    def __init__(self, client: redis.Redis, *, confirm_timeout: float = 10.0) -> None:
        untyped: Any = client  # redis-py leaves pubsub()'s arguments untyped
        self._pubsub: Any = untyped.pubsub()
        self._confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        #: Patterns Redis confirmed on the current connection, and their waiters.
        self._confirmed: dict[bytes, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def subscribe(self, patterns: tuple[str, ...], callback: Callback) -> Callable[[], None]:
        subscription = _Subscription(patterns, callback)
        waits: list[threading.Event] = []
        with self._lock:
            new = [p for p in patterns if p.encode() not in self._confirmed]
            for pattern in new:
                self._confirmed[pattern.encode()] = threading.Event()
            waits = [self._confirmed[p.encode()] for p in patterns]
            self._subscriptions.append(subscription)
            try:
                if new:
                    self._pubsub.psubscribe(*new)
            except (redis.RedisError, OSError) as exc:
                self._forget(subscription)
                raise TransportError(f"Redis subscribe failed: {exc}") from exc
            self._start()
        for event in waits:
            if not event.wait(self._confirm_timeout):
                self._unsubscribe(subscription)
                raise TransportError(
                    f"Redis did not confirm the subscription to {patterns!r} "
                    f"within {self._confirm_timeout} s"
                )
        return lambda: self._unsubscribe(subscription)

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_READ_TIMEOUT * 4)
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()

    # -- inside the lock ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="taskq-redis-fanout", daemon=True
            )
            self._thread.start()

    def _forget(self, subscription: _Subscription) -> list[str]:
        """Drop a subscriber; the patterns nobody needs any more."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        wanted = {p for s in self._subscriptions for p in s.patterns}
        unused = [p for p in subscription.patterns if p not in wanted]
        for pattern in unused:
            self._confirmed.pop(pattern.encode(), None)
        return unused

    def _unsubscribe(self, subscription: _Subscription) -> None:
        with self._lock:
            unused = self._forget(subscription)
            if unused and not self._stopping.is_set():
                try:
                    self._pubsub.punsubscribe(*unused)
                except (redis.RedisError, OSError) as exc:
                    # The connection is gone: forget the patterns in redis-py too, or its
                    # reconnect would subscribe to them again.
                    logger.debug("punsubscribe failed (%s); dropping the patterns locally", exc)
                    for pattern in unused:
                        self._pubsub.patterns.pop(pattern.encode(), None)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                message = self._pubsub.get_message(timeout=_READ_TIMEOUT)
                failures = 0
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                # ValueError/AttributeError: redis-py reading a socket another thread closed.
                if self._stopping.is_set():
                    return
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                logger.warning(
                    "Lost the Redis pub/sub connection (%s); retrying in %s s", exc, delay
                )
                self._stopping.wait(delay)
                continue
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("psubscribe", b"psubscribe"):
            channel = message.get("channel")
            with self._lock:
                event = self._confirmed.get(channel) if isinstance(channel, bytes) else None
            if event is not None:
                event.set()
            return
        if kind not in ("pmessage", b"pmessage"):
            return
        pattern = message.get("pattern")
        data = message.get("data")
        if not isinstance(pattern, bytes) or not isinstance(data, bytes):
            return
        name = pattern.decode()
        with self._lock:
            callbacks = [s.callback for s in self._subscriptions if name in s.patterns]
        if not callbacks:
            return
        for callback in callbacks:
            # A copy each, so one subscriber changing its envelope cannot affect another.
            try:
                envelope = Envelope.decode(data)
            except ProtocolError as exc:
                logger.warning("Ignoring a broadcast on %r that is not an envelope: %s", name, exc)
                return
            try:
                callback(envelope)
            except Exception:
                logger.exception("A broadcast subscriber on %r failed", name)
