"""One pub/sub connection and one listener thread that every waiting thread of a backend shares.

Each state write is published on the meta key's name (``celery-task-meta-<id>``), so a client
waits by subscribing to the keys of the tasks it waits for. A connection per ``wait()`` would
cost a connect (and a thread) per ``get()``; here one connection serves every waiting thread:

- :meth:`ResultSubscriber.subscribe` registers a :class:`Subscription` and sends ``SUBSCRIBE``
  for the channels nobody listens to yet. It does not wait for the server.
- The listener thread reads the connection. A ``subscribe`` confirmation tells it that the
  server now publishes to us; once every channel of a subscription is confirmed, the
  subscription's :attr:`~Subscription.generation` goes up. A message goes to the inbox of every
  subscription of its channel.
- The waiter reads the keys again whenever the generation moved since its last read. A read
  that starts after the confirmation cannot miss a write: the write was either before the read
  (the read sees it) or after the subscription (it is published to us).
- When the connection is lost, the listener connects again (backing off up to a second),
  subscribes to every channel still wanted and, once confirmed, moves every subscription's
  generation, so every waiter reads its keys again: writes published while the connection was
  down are found that way.

Confirmations are counted per channel (a channel unsubscribed and subscribed again before the
server answered gets two), so a channel is confirmed only when the server has taken the last
``SUBSCRIBE`` sent for it.

The connection speaks RESP2 whatever the client's protocol is, so messages arrive as plain
replies, and is made from the client's connection settings (TLS, Unix socket, Sentinel master
discovery, credentials) but kept outside its pool, so it takes no pooled connection away.
Waiting threads only send on it, under the lock; the listener alone reads, and it alone
connects and drops the connection (also under the lock), so a sender never meets a half-closed
connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol, cast

import redis

from taskq.contracts import BackendError
from taskq_redis.backend_retry import CONNECTION_ERRORS

__all__ = ["ResultSubscriber", "Subscription"]

logger = logging.getLogger(__name__)

#: With nothing read for this long, the listener PINGs; with the PING unanswered as long
#: again, it takes the connection for dead and connects anew.
IDLE_CHECK = 30.0
#: The pause between reconnection attempts grows by this much up to RECONNECT_MAX.
RECONNECT_STEP = 0.1
RECONNECT_MAX = 1.0


class _Connection(Protocol):
    """The part of redis-py's (loosely typed) connection classes the subscriber uses."""

    def connect(self) -> None: ...

    def disconnect(self, *args: Any) -> None: ...

    def send_command(self, *args: Any, check_health: bool = True) -> None: ...

    def read_response(
        self, disable_decoding: bool = False, *, timeout: float, disconnect_on_error: bool
    ) -> Any: ...


class Subscription:
    """One waiting thread's channels, inbox and view of the subscription's state."""

    __slots__ = ("channels", "closed", "event", "generation", "inbox", "missing")

    def __init__(self, channels: tuple[bytes, ...]) -> None:
        self.channels = channels
        #: Moves each time every channel is confirmed (first subscribe, and after reconnects).
        self.generation = 0
        #: ``(channel, payload)`` of the messages received and not yet taken.
        self.inbox: list[tuple[bytes, bytes]] = []
        #: Set when the subscriber closed: waiting is pointless.
        self.closed = False
        #: Channels not yet confirmed on the current connection (the subscriber's to count).
        self.missing = len(channels)
        #: Set by the listener when there is something to take.
        self.event = threading.Event()


class ResultSubscriber:
    """The shared subscriber of one backend instance (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._connection_class = cast("type[_Connection]", pool.connection_class)
        self._connection_kwargs: dict[str, Any] = {**pool.connection_kwargs, "protocol": 2}
        self._lock = threading.Lock()
        self._interest: dict[bytes, set[Subscription]] = {}
        #: SUBSCRIBEs sent on the current connection and not yet confirmed, by channel.
        self._unconfirmed: dict[bytes, int] = {}
        #: Channels the server confirmed, with no SUBSCRIBE sent since.
        self._confirmed: set[bytes] = set()
        self._connection: _Connection | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._listen, name="taskq-redis-results", daemon=True
        )
        self._thread.start()

    # -- waiting threads --------------------------------------------------------------------

    def subscribe(self, channels: Iterable[bytes]) -> Subscription:
        """Listen to ``channels`` (returns at once; see :attr:`Subscription.generation`)."""
        subscription = Subscription(tuple(dict.fromkeys(channels)))
        with self._lock:
            if self._closed:
                raise BackendError("the Redis result backend is closed")
            new: list[bytes] = []
            for channel in subscription.channels:
                listeners = self._interest.get(channel)
                if listeners is None:
                    listeners = self._interest[channel] = set()
                    new.append(channel)
                listeners.add(subscription)
                if channel in self._confirmed:
                    subscription.missing -= 1
            if subscription.missing == 0:
                subscription.generation = 1
            if new:
                self._send_locked("SUBSCRIBE", new)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop listening; channels nobody else listens to are unsubscribed (without waiting)."""
        with self._lock:
            gone: list[bytes] = []
            for channel in subscription.channels:
                listeners = self._interest.get(channel)
                if listeners is None:
                    continue
                listeners.discard(subscription)
                if not listeners:
                    del self._interest[channel]
                    self._confirmed.discard(channel)
                    gone.append(channel)
            if gone and not self._closed:
                self._send_locked("UNSUBSCRIBE", gone)

    def take(
        self, subscription: Subscription, seen_generation: int, timeout: float | None
    ) -> list[tuple[bytes, bytes]]:
        """The messages received so far, waiting up to ``timeout`` for one, or for the
        generation to move past ``seen_generation``, or for the subscriber to close."""
        event = subscription.event
        with self._lock:
            if subscription.inbox or subscription.generation != seen_generation:
                return self._drain_locked(subscription)
            if subscription.closed:
                raise BackendError("the Redis result backend was closed while waiting")
            event.clear()
        event.wait(timeout)
        with self._lock:
            if subscription.closed:
                raise BackendError("the Redis result backend was closed while waiting")
            return self._drain_locked(subscription)

    @staticmethod
    def _drain_locked(subscription: Subscription) -> list[tuple[bytes, bytes]]:
        messages, subscription.inbox = subscription.inbox, []
        return messages

    def _send_locked(self, command: str, channels: list[bytes]) -> bool:
        """Send a (UN)SUBSCRIBE, counting the confirmations SUBSCRIBE asks for; False when
        there is no connection to send on.

        With no connection, nothing is sent: the listener subscribes to every wanted channel
        when it connects. A send that fails drops the connection; the listener sees it and
        connects again.
        """
        if command == "SUBSCRIBE":
            for channel in channels:
                self._confirmed.discard(channel)
        connection = self._connection
        if connection is None:
            return False
        if command == "SUBSCRIBE":
            for channel in channels:
                self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
        try:
            connection.send_command(command, *channels, check_health=False)
        except CONNECTION_ERRORS:
            self._drop_locked(connection)
            return False
        return True

    # -- the listener thread ----------------------------------------------------------------

    def _listen(self) -> None:
        pause = 0.0
        while not self._closed:
            connection = self._connect()
            if connection is None:
                time.sleep(pause)
                pause = min(pause + RECONNECT_STEP, RECONNECT_MAX)
                continue
            pause = 0.0
            try:
                self._read(connection)
            except CONNECTION_ERRORS as exc:
                if not self._closed:
                    logger.warning("Redis result subscriber lost its connection: %s", exc)
            except Exception:  # a bug here must not leave waiters hanging silently
                logger.exception("Redis result subscriber failed; connecting again")
            with self._lock:
                self._drop_locked(connection)

    def _connect(self) -> _Connection | None:
        """A new connection, subscribed to every wanted channel; None when that failed (Redis
        cannot be reached) or the subscriber closed meanwhile."""
        connection = self._connection_class(**self._connection_kwargs)
        try:
            connection.connect()
        except CONNECTION_ERRORS as exc:
            logger.debug("Redis result subscriber cannot connect: %s", exc)
            connection.disconnect()
            return None
        with self._lock:
            if self._closed:
                connection.disconnect()
                return None
            self._connection = connection
            self._unconfirmed.clear()
            self._confirmed.clear()
            for listeners in self._interest.values():
                for subscription in listeners:
                    subscription.missing = len(subscription.channels)
            if self._interest and not self._send_locked("SUBSCRIBE", list(self._interest)):
                return None
        return connection

    def _read(self, connection: _Connection) -> None:
        pinged = False
        while True:
            try:
                reply: Any = connection.read_response(
                    disable_decoding=True, timeout=IDLE_CHECK, disconnect_on_error=False
                )
            except redis.TimeoutError:
                if pinged:
                    raise redis.ConnectionError(f"no answer to PING in {IDLE_CHECK:.0f}s") from None
                with self._lock:
                    if self._connection is not connection:
                        raise redis.ConnectionError("dropped") from None
                    connection.send_command("PING", check_health=False)
                pinged = True
                continue
            pinged = False
            if isinstance(reply, list) and len(cast("list[Any]", reply)) == 3:
                kind, channel, data = cast("list[Any]", reply)
                if kind == b"message":
                    self._deliver(channel, data)
                elif kind == b"subscribe":
                    self._confirm(channel)
            # Anything else (unsubscribe confirmations, PONG) needs no action.

    def _deliver(self, channel: bytes, payload: bytes) -> None:
        with self._lock:
            for subscription in self._interest.get(channel, ()):
                subscription.inbox.append((channel, payload))
                subscription.event.set()

    def _confirm(self, channel: bytes) -> None:
        with self._lock:
            left = self._unconfirmed.get(channel, 0) - 1
            if left > 0:
                self._unconfirmed[channel] = left
                return
            self._unconfirmed.pop(channel, None)
            listeners = self._interest.get(channel)
            if listeners is None:
                return  # unsubscribed meanwhile
            self._confirmed.add(channel)
            for subscription in listeners:
                subscription.missing -= 1
                if subscription.missing == 0:
                    subscription.generation += 1
                    subscription.event.set()

    def _drop_locked(self, connection: _Connection) -> None:
        if self._connection is connection:
            self._connection = None
            self._unconfirmed.clear()
            self._confirmed.clear()
        connection.disconnect()

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and wake every waiting thread (which then raises BackendError)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._connection is not None:
                self._drop_locked(self._connection)
            for listeners in self._interest.values():
                for subscription in listeners:
                    subscription.closed = True
                    subscription.event.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
