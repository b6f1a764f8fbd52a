"""One pub/sub connection that every waiting thread of a backend shares, read by the waiters.

Each state write is published on the meta key's name (``celery-task-meta-<id>``), so a client
waits by subscribing to the keys of the tasks it waits for. A connection per ``wait()`` would
cost a connect per ``get()``; here one connection serves every waiting thread, and there is no
listener thread: a waiting thread reads the connection itself (Celery's way when one thread
waits), so a result reaches the thread that wants it without a hand-over between threads.

- :meth:`ResultSubscriber.subscribe` registers a :class:`Subscription` and sends ``SUBSCRIBE``
  for the channels nobody listens to yet. It does not wait for the server.
- :meth:`ResultSubscriber.take` returns what arrived for a subscription. One waiting thread at
  a time is the *reader*: it reads the connection and files every reply under the
  subscriptions it concerns, waking their threads; the others sleep until woken. A reader that
  got what it waited for passes the role to a sleeping waiter.
- The connection speaks RESP3 when the server does (Redis 6 and later). A subscribed RESP3
  connection may still run commands, so ``SUBSCRIBE`` goes out together with a ``GET`` of each
  key, in one write: Redis runs the ``GET`` after the subscription, so a write before it is in
  the ``GET``'s answer and a write after it is published to us. The answers arrive in the
  inbox like published messages; the waiter needs no read of its own and no round trip to wait
  for the confirmation.
- On RESP2 (older servers), a ``subscribe`` confirmation tells that the server now publishes to
  us; once every channel of a subscription is confirmed, the subscription's
  :attr:`~Subscription.generation` goes up and the waiter reads its keys itself. A read that
  starts after the confirmation cannot miss a write.
- When the connection is lost, the reader connects again (backing off up to a second),
  subscribes to every channel still wanted and reads every wanted key again (RESP3) or moves
  every subscription's generation once confirmed (RESP2): writes published while the
  connection was down are found that way. An outage is logged as a warning once, when it
  begins (each further failed attempt at debug level), and its end at info level. An attempt
  gets no more time than its reader's caller has left (within ``socket_connect_timeout`` and
  ``socket_timeout``), so a host that does not answer does not keep a ``get()`` past its
  timeout.
- A server certificate that does not verify (:mod:`taskq_redis.certificates`) is not an
  outage: the reader raises :class:`~taskq.exceptions.ImproperlyConfigured`, naming the
  setting, and every waiter subscribed at that moment raises it too, without another attempt.

Confirmations are counted per channel (a channel unsubscribed and subscribed again before the
server answered gets two), so a channel is confirmed only when the server has taken the last
``SUBSCRIBE`` sent for it.

The connection is made from the client's connection settings (TLS, Unix socket, Sentinel master
discovery, credentials) but kept outside its pool, so it takes no pooled connection away.
Commands are sent under the lock, so the answers of ``GET``s come back in the order recorded;
only the reader reads, connects and drops the connection (``close`` drops it too, under the
lock, and the reader then finds it gone).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol, cast

import hiredis
import redis

from taskq.contracts import BackendError
from taskq.exceptions import ImproperlyConfigured
from taskq_redis.backend_retry import CONNECTION_ERRORS
from taskq_redis.certificates import CertificateSettings
from taskq_redis.direct import pack_command

__all__ = ["ResultSubscriber", "Subscription"]

logger = logging.getLogger(__name__)

#: With nothing read for this long, the reader PINGs; with the PING unanswered as long
#: again, it takes the connection for dead and connects anew.
IDLE_CHECK = 30.0
#: The pause between reconnection attempts grows by this much up to RECONNECT_MAX.
RECONNECT_STEP = 0.1
RECONNECT_MAX = 1.0
#: Channels left subscribed after their waiters left, at most, before an UNSUBSCRIBE of its own.
STALE_MAX = 256
#: What one read asks the socket for.
_READ_SIZE = 65536

# What a reply is answering, in the order commands were sent (RESP3 only: on RESP2 a
# subscribed connection takes no command but (UN)SUBSCRIBE and PING, whose answers say what
# they are). A channel stands for the GET of its key.
_PING = b""


class _Connection(Protocol):
    """The part of redis-py's (loosely typed) connection classes the subscriber uses."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def connect(self) -> None: ...

    def disconnect(self, *args: Any) -> None: ...


class _Reader(Protocol):
    """hiredis's reader as it is (its stub takes only bytes for ``feed``)."""

    def feed(self, buffer: bytearray, offset: int, length: int) -> None: ...

    def gets(self) -> Any: ...


class _Wire:
    """A connected subscriber connection, written and read on its socket directly.

    redis-py connects it (TLS, credentials, ``HELLO``, Sentinel discovery); after that, each
    reply through redis-py's parser (push handling, a logger lookup, two timeout changes) cost
    more CPU than a ``get()``'s whole round trip. Writes are hiredis-packed commands in one
    ``sendall``; reads feed one hiredis reader, which keeps a partial reply across a timeout.
    """

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        # redis-py keeps the connected socket private; from here on only this object uses it.
        self._sock: socket.socket = cast(Any, connection)._sock
        self._reader = cast(_Reader, hiredis.Reader())
        self._buffer = bytearray(_READ_SIZE)
        self._timeout = self._sock.gettimeout()

    def send(self, commands: Iterable[tuple[bytes | str, ...]]) -> None:
        self._sock.sendall(b"".join([pack_command(command) for command in commands]))

    def read(self, timeout: float) -> Any:
        """The next reply, waiting up to ``timeout`` seconds for more bytes (then
        redis-py's ``TimeoutError``); an error reply raises ``ResponseError``."""
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            if timeout != self._timeout:
                # Left as it is afterwards: setting it costs a syscall, and the next read
                # usually waits as long.
                self._sock.settimeout(timeout)
                self._timeout = timeout
            try:
                read = self._sock.recv_into(self._buffer)
            except TimeoutError:  # socket.timeout
                raise redis.TimeoutError("no reply yet") from None
            except OSError as exc:
                raise redis.ConnectionError(f"Error reading from Redis: {exc}") from exc
            if not read:
                raise redis.ConnectionError("Connection closed by server.")
            reader.feed(self._buffer, 0, read)
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                raise redis.InvalidResponse(str(exc)) from exc
        if isinstance(reply, hiredis.ReplyError):
            raise redis.ResponseError(str(reply))
        return reply

    def disconnect(self) -> None:
        self.connection.disconnect()


class Subscription:
    """One waiting thread's channels, inbox and view of the subscription's state."""

    __slots__ = ("channels", "closed", "event", "failure", "generation", "inbox", "missing")

    def __init__(self, channels: tuple[bytes, ...]) -> None:
        self.channels = channels
        #: Moves each time the waiter must read its keys itself: on RESP2, when every channel
        #: is confirmed (first subscribe, and after reconnects). On RESP3 it never moves: the
        #: subscriber reads the keys with the subscription and files the values in the inbox.
        self.generation = 0
        #: ``(channel, payload)`` of the messages (and key values) received and not yet taken.
        self.inbox: list[tuple[bytes, bytes]] = []
        #: Set when the subscriber closed: waiting is pointless.
        self.closed = False
        #: Set when connecting failed for good (a certificate): the waiter raises it.
        self.failure: ImproperlyConfigured | None = None
        #: Channels not yet confirmed on the current connection (the subscriber's to count).
        self.missing = len(channels)
        #: Set when there is something to take, or when this waiter should become the reader;
        #: made the first time the waiter sleeps (a lone waiter reads and never sleeps).
        self.event: threading.Event | None = None

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()


class ResultSubscriber:
    """The shared subscriber of one backend instance (see the module docstring)."""

    def __init__(
        self, client: redis.Redis, certificates: CertificateSettings, *, protocol: int = 3
    ) -> None:
        pool = client.connection_pool
        #: The backend's: tells a certificate that does not verify from Redis being away.
        self._certificates = certificates
        self._connection_class = cast("type[_Connection]", pool.connection_class)
        self._connection_kwargs: dict[str, Any] = dict(pool.connection_kwargs)
        #: 3 until a server refuses RESP3, then 2 for good (or 2 from the start if asked).
        self._protocol = protocol
        self._lock = threading.Lock()
        self._interest: dict[bytes, set[Subscription]] = {}
        #: SUBSCRIBEs sent on the current connection and not yet confirmed, by channel.
        self._unconfirmed: dict[bytes, int] = {}
        #: Channels the server confirmed, with no SUBSCRIBE sent since.
        self._confirmed: set[bytes] = set()
        #: What the non-push replies still to come answer (RESP3), oldest first.
        self._answers: deque[bytes] = deque()
        self._connection: _Wire | None = None
        self._resp3 = False
        self._closed = False
        #: The subscription whose thread reads the connection now, if any.
        self._reader: Subscription | None = None
        #: Channels nobody listens to any more, not yet unsubscribed on the connection.
        self._stale: list[bytes] = []
        #: Subscriptions whose threads sleep in take(), one of which takes over the reading.
        self._sleeping: set[Subscription] = set()
        self._reconnect_pause = 0.0
        #: Connecting failed since the connection was last up (the reader's own).
        self._outage = False

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
            if self._connection is not None and self._resp3:
                self._send_locked(new, subscription.channels)
            else:
                if subscription.missing == 0:
                    subscription.generation = 1
                if new:
                    self._send_locked(new, ())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop listening; channels nobody else listens to are unsubscribed (without waiting)."""
        with self._lock:
            self._sleeping.discard(subscription)
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
            if gone and not self._closed and self._connection is not None:
                # Sent with the next SUBSCRIBE (one write, not one per get()), or now once
                # many wait: until then their messages still come and are dropped unread.
                self._stale.extend(gone)
                if len(self._stale) >= STALE_MAX:
                    self._send_locked([], ())

    def take(
        self, subscription: Subscription, seen_generation: int, timeout: float | None
    ) -> list[tuple[bytes, bytes]]:
        """The messages received so far, waiting up to ``timeout`` for one, or for the
        generation to move past ``seen_generation``, or for the subscriber to close."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        event: threading.Event | None = None
        while True:
            with self._lock:
                if subscription.inbox or subscription.generation != seen_generation:
                    self._leaving_locked()
                    return self._drain_locked(subscription)
                if subscription.closed:
                    raise BackendError("the Redis result backend was closed while waiting")
                if subscription.failure is not None:
                    raise subscription.failure.again()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._leaving_locked()
                    return []
                reading = self._reader is None
                if reading:
                    self._reader = subscription
                else:
                    event = subscription.event
                    if event is None:
                        event = subscription.event = threading.Event()
                    event.clear()
                    self._sleeping.add(subscription)
            if reading:
                try:
                    self._read_until(subscription, seen_generation, deadline)
                finally:
                    self._pass_reading(subscription)
            elif event is not None:
                event.wait(remaining)
                with self._lock:
                    self._sleeping.discard(subscription)

    @staticmethod
    def _drain_locked(subscription: Subscription) -> list[tuple[bytes, bytes]]:
        messages, subscription.inbox = subscription.inbox, []
        return messages

    def _pass_reading(self, subscription: Subscription) -> None:
        """Give up the reader's role and wake a sleeping waiter to take it over."""
        with self._lock:
            if self._reader is subscription:
                self._reader = None
            self._wake_sleeper_locked()

    def _leaving_locked(self) -> None:
        """A waiter leaves take(): if nobody reads, a sleeper (woken to take the reading
        over, perhaps this very waiter) must get the role."""
        if self._reader is None:
            self._wake_sleeper_locked()

    def _wake_sleeper_locked(self) -> None:
        for sleeper in self._sleeping:
            sleeper.wake()
            break

    # -- sending (under the lock) -------------------------------------------------------------

    def _send_locked(self, channels: list[bytes], reads: Iterable[bytes]) -> bool:
        """Send a SUBSCRIBE for ``channels`` and (RESP3) a GET of each key in ``reads``, in one
        write; False when there is no connection to send on.

        With no connection, nothing is sent: the reader subscribes to every wanted channel
        (and reads every wanted key) when it connects. A send that fails drops the connection;
        the reader sees it and connects again.
        """
        for channel in channels:
            self._confirmed.discard(channel)
        connection = self._connection
        if connection is None:
            return False
        commands: list[tuple[Any, ...]] = []
        if self._stale:
            # Before the SUBSCRIBE: a channel subscribed again stays subscribed.
            commands.append(("UNSUBSCRIBE", *self._stale))
            self._stale.clear()
        if channels:
            commands.append(("SUBSCRIBE", *channels))
            for channel in channels:
                self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
        for key in reads:
            commands.append(("GET", key))
            self._answers.append(key)
        if not commands:
            return True
        try:
            connection.send(commands)
        except CONNECTION_ERRORS:
            self._drop_locked(connection)
            return False
        return True

    # -- reading (the reader's thread) -----------------------------------------------------------

    def _read_until(
        self, subscription: Subscription, seen_generation: int, deadline: float | None
    ) -> None:
        """Read the connection, filing what comes, until ``subscription`` has something, the
        deadline passes, or the subscriber closes."""
        pinged = False
        while True:
            with self._lock:
                if (
                    subscription.inbox
                    or subscription.generation != seen_generation
                    or subscription.closed
                    or subscription.failure is not None
                ):
                    return
                connection = self._connection
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            if connection is None:
                try:
                    connection = self._connect(remaining)
                except ImproperlyConfigured as error:
                    self._fail(error)
                    raise
                if connection is None:
                    pause = self._reconnect_pause
                    self._reconnect_pause = min(pause + RECONNECT_STEP, RECONNECT_MAX)
                    time.sleep(pause if remaining is None else min(pause, remaining))
                    continue
                self._reconnect_pause = 0.0
                pinged = False
            wait = IDLE_CHECK if remaining is None else min(remaining, IDLE_CHECK)
            try:
                reply: Any = connection.read(wait)
            except redis.TimeoutError:
                if wait < IDLE_CHECK:
                    continue  # the caller's deadline, not an idle connection
                if pinged:
                    self._lost(connection, f"no answer to PING in {IDLE_CHECK:.0f}s")
                    continue
                with self._lock:
                    if self._connection is connection:
                        self._ping_locked(connection)
                pinged = True
                continue
            except redis.ResponseError as exc:
                # A GET answered with an error (a key of another type): nothing to file.
                with self._lock:
                    if self._connection is connection and self._answers:
                        self._answers.popleft()
                logger.warning("Redis result subscriber: a read failed: %s", exc)
                continue
            except CONNECTION_ERRORS as exc:
                self._lost(connection, str(exc))
                continue
            except redis.RedisError as exc:  # a reply the parser cannot read: start afresh
                self._lost(connection, f"unreadable reply: {exc}")
                continue
            pinged = False
            self._file(connection, reply)

    def _file(self, connection: _Wire, reply: Any) -> None:
        """Put one reply where it belongs."""
        with self._lock:
            if self._connection is not connection:
                return
            if isinstance(reply, list) and len(cast("list[Any]", reply)) == 3:
                kind, channel, data = cast("list[Any]", reply)
                if kind == b"message":
                    self._deliver_locked(channel, data)
                elif kind == b"subscribe":
                    self._confirm_locked(channel)
                return  # unsubscribe confirmations and RESP2's PONG need nothing
            if self._resp3 and self._answers:
                channel = self._answers.popleft()
                if channel != _PING and isinstance(reply, bytes):
                    self._deliver_locked(channel, reply)

    def _deliver_locked(self, channel: bytes, payload: bytes) -> None:
        for subscription in self._interest.get(channel, ()):
            subscription.inbox.append((channel, payload))
            subscription.wake()

    def _confirm_locked(self, channel: bytes) -> None:
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
            if subscription.missing == 0 and not self._resp3:
                subscription.generation += 1
                subscription.wake()

    def _ping_locked(self, connection: _Wire) -> None:
        try:
            connection.send([("PING",)])
        except CONNECTION_ERRORS:
            self._drop_locked(connection)
            return
        if self._resp3:
            self._answers.append(_PING)

    def _lost(self, connection: _Wire, why: str) -> None:
        with self._lock:
            if not self._closed and self._connection is connection:
                logger.warning("Redis result subscriber lost its connection: %s; reconnecting", why)
                self._outage = True
            self._drop_locked(connection)

    def _fail(self, error: ImproperlyConfigured) -> None:
        """Connecting cannot succeed: every waiter now subscribed raises ``error``."""
        with self._lock:
            for listeners in self._interest.values():
                for subscription in listeners:
                    subscription.failure = error
                    subscription.wake()

    def _connect(self, remaining: float | None) -> _Wire | None:
        """A new connection, subscribed to every wanted channel (and, on RESP3, reading every
        wanted key); None when that failed (Redis cannot be reached, or not within
        ``remaining`` seconds) or the subscriber closed. ImproperlyConfigured when the server's
        certificate does not verify."""
        connection = self._open(remaining)
        if connection is None:
            return None
        if self._outage:
            self._outage = False
            logger.info("Redis result subscriber connected again")
        with self._lock:
            if self._closed:
                connection.disconnect()
                return None
            self._connection = connection
            self._unconfirmed.clear()
            self._confirmed.clear()
            self._answers.clear()
            for listeners in self._interest.values():
                for subscription in listeners:
                    subscription.missing = len(subscription.channels)
            wanted = list(self._interest)
            if wanted and not self._send_locked(wanted, wanted if self._resp3 else ()):
                return None
        return connection

    def _open(self, remaining: float | None) -> _Wire | None:
        while True:
            protocol = self._protocol
            connection = self._connection_class(**{**self._connection_kwargs, "protocol": protocol})
            shortened = remaining is not None and _shorten_timeouts(connection, remaining)
            try:
                connection.connect()
            except CONNECTION_ERRORS as exc:
                connection.disconnect()
                if protocol == 3 and "RESP version" in str(exc):
                    self._protocol = 2  # the server answered HELLO 3 with another protocol
                    continue
                misconfigured = self._certificates.error(exc)
                if misconfigured is not None:
                    raise misconfigured from exc
                if shortened and isinstance(exc, redis.TimeoutError):
                    # The caller's deadline, not the server's failure: nothing to report.
                    logger.debug("Redis result subscriber: no connection in time: %s", exc)
                else:
                    self._unreachable(exc)
                return None
            except redis.RedisError as exc:
                connection.disconnect()
                if protocol == 2:
                    self._unreachable(exc)
                    return None
                # A server without RESP3 (HELLO 3 refused): subscribe, confirm, then read.
                self._protocol = 2
                continue
            self._resp3 = protocol == 3
            return _Wire(connection)

    def _unreachable(self, exc: BaseException) -> None:
        """Log a failed attempt: a warning for the first of an outage, debug for the rest."""
        if self._outage:
            logger.debug("Redis result subscriber cannot connect: %s", exc)
            return
        self._outage = True
        logger.warning(
            "Redis result subscriber cannot connect: %s; trying again, backing off up to %.0fs "
            "(logged once until connected)",
            exc,
            RECONNECT_MAX,
        )

    def _drop_locked(self, connection: _Wire) -> None:
        if self._connection is connection:
            self._connection = None
            self._unconfirmed.clear()
            self._confirmed.clear()
            self._answers.clear()
            self._stale.clear()
        connection.disconnect()

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the connection and wake every waiting thread (which then raises BackendError)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._connection is not None:
                self._drop_locked(self._connection)
            for listeners in self._interest.values():
                for subscription in listeners:
                    subscription.closed = True
                    subscription.wake()


def _shorten_timeouts(connection: _Connection, remaining: float) -> bool:
    """Give ``connection``'s connect and handshake no more than ``remaining`` seconds;
    whether that shortened a timeout it had."""
    shortened = False
    limit = max(remaining, 0.001)  # 0 would make the socket non-blocking
    for name in ("socket_connect_timeout", "socket_timeout"):
        current: float | None = getattr(connection, name)
        if current is None or current > limit:
            setattr(connection, name, limit)
            shortened = True
    return shortened
