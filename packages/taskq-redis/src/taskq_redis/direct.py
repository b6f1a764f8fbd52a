"""Single commands on a connection of their own, with as little as possible around each.

A command through redis-py's client or pool costs about twice the CPU of its round trip:
checking a connection out and in (a pid check, a lock, a queue, metrics), a ``poll()`` for
unread data, the health-check bookkeeping and the parser's layers. :class:`DirectConnection`
keeps one connection, made from the client's pool settings (TLS, Unix socket, Sentinel
discovery, credentials, database) but outside the pool, guarded by a lock; a command goes out
with one ``sendall`` and its reply is read with hiredis straight from the socket.

Commands can also be *posted*: sent without waiting for their replies, which are read as they
arrive (a non-blocking read on every post) and all at once before the next command that waits.
A ``delay()`` that waits for Redis costs a round trip in which the client and Redis each wake
the other (about 100 µs of wall time and 38 µs of the client's CPU here, most of it the
kernel's); a posted one costs about 8 µs. What that leaves open, and how it is closed:

- The server just started or restarted. The first command on a new connection, and a
  script's first run on it, wait for their replies: a server loading its data or lacking the
  script says so at once, to a caller who handles it.
- The reply is an error. ``NOSCRIPT`` (``SCRIPT FLUSH`` on a running server) loads the script
  and sends the command again; ``LOADING`` and ``READONLY`` (a restart, a failover) drop the
  connection and send every unanswered command again on a new one; any other error (Redis out
  of memory, a key of the wrong type) gives the command up and is raised by the next
  :meth:`~DirectConnection.flush` or :meth:`~DirectConnection.post`, saying how many.
- The connection is lost. Every command posted and not answered is sent again on the next
  connection (at least once: a command Redis ran before the loss runs twice).
- Nothing waits long. A post first reads every reply once more than ``window`` commands are
  unanswered or the oldest was sent more than ``max_age`` seconds ago, and every command that
  waits (:meth:`~DirectConnection.execute`) reads all of them first, in order.
- The process ends. What it wrote is delivered by the kernel and run by Redis; at a normal
  exit every reply is read (``atexit``; a refusal is logged), and the transport's ``close()``
  reads them and raises a refusal. Only a process killed before an error reply arrived
  leaves that error unanswered.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import hiredis
import redis
from redis.exceptions import BusyLoadingError, NoScriptError, ReadOnlyError

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_WINDOW", "IDLE_CLOSE", "DirectConnection", "pack_command"]

logger = logging.getLogger(__name__)

#: A connection found closed after this many idle seconds is logged at INFO, not WARNING: a
#: server's idle-client ``timeout`` closes such connections, a restart any connection.
IDLE_CLOSE = 30.0
#: Posted commands left unanswered before a post reads every reply.
DEFAULT_WINDOW = 1000
#: Seconds the oldest unanswered posted command may wait before a post reads every reply.
DEFAULT_MAX_AGE = 1.0

#: What one read asks the socket for; replies on the hot paths are far smaller.
_READ_SIZE = 65536


class _Reader(Protocol):
    """hiredis's reader as it is (its stub takes only bytes for ``feed``)."""

    def feed(self, buffer: bytearray, offset: int, length: int) -> None: ...

    def gets(self) -> Any: ...

    def has_data(self) -> bool: ...


#: hiredis's ``pack_command`` as it is (its stub declares a one-element tuple).
pack_command = cast(
    "Callable[[tuple[str | bytes | int | float, ...]], bytes]",
    hiredis.pack_command,  # pyright: ignore[reportUnknownMemberType]
)
_PING = pack_command(("PING",))
#: Error replies raised as the redis-py exceptions callers here tell apart (as its parser
#: does): NOSCRIPT reloads a script, LOADING and READONLY (a restart, a failover) are retried.
_ERROR_REPLIES: dict[str, type[redis.RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
}


@dataclass(slots=True, eq=False)
class _Posted:
    """A command sent without waiting for its reply."""

    command: bytes
    #: The Lua source the command's ``EVALSHA`` runs, loaded if Redis answers ``NOSCRIPT``.
    source: str | None
    #: When it was last sent (``time.monotonic()``).
    sent_at: float = 0.0
    #: For a ``SCRIPT LOAD`` posted after a ``NOSCRIPT``: the source it loads.
    loads: str | None = None
    #: Among the unanswered: sent (or to be sent again on the next connection).
    queued: bool = False


class DirectConnection:
    """One connection of its own for a hot path's single commands (see the module docstring).

    What the pool's checks protect against still holds: a connection the server closed or that
    has unread bytes (a ``poll()`` before each command, one syscall; logged) and one idle for
    longer than ``health_check_interval`` (a ``PING`` first) is replaced before the command is
    sent; any error during a command drops the connection, so no half-read reply is ever
    mistaken for the next one's; attempts follow the connection's retry policy, each failed one
    dropping the connection so the next connects afresh. A thread that finds the connection in
    use by another takes a pooled one instead of waiting. A forked child never touches its
    parent's connection: it makes its own.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        window: int = DEFAULT_WINDOW,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        pool: Any = client.connection_pool  # redis-py leaves pools untyped
        self._pool = pool
        self._lock = threading.Lock()
        #: Not connected until the first command; connected again after each drop.
        self._connection: Any = pool.connection_class(**pool.connection_kwargs)
        self._sock: socket.socket | None = None
        self._poller = select.poll()
        self._reader = cast(_Reader, hiredis.Reader())
        self._buffer = bytearray(_READ_SIZE)
        self._interval = float(pool.connection_kwargs.get("health_check_interval") or 0)
        self._check_after = 0.0
        #: When the last reply arrived (``time.monotonic()``).
        self._used_at = 0.0
        self.window = window
        self.max_age = max_age
        #: Posted commands not answered yet, in the order they were sent.
        self._posted: deque[_Posted] = deque()
        #: Error replies to posted commands, given up and not reported yet.
        self._refused: list[str] = []
        #: Sources whose ``SCRIPT LOAD`` is posted and not answered yet.
        self._loading: set[str] = set()
        #: No reply was read on this connection yet.
        self._fresh = True
        #: Scripts run on this connection since it was made (their sources).
        self._scripts: set[str] = set()
        _direct_connections.add(self)

    @property
    def unanswered(self) -> int:
        """Posted commands whose replies were not read yet."""
        return len(self._posted)

    @property
    def refused(self) -> int:
        """Posted commands Redis refused, not reported yet."""
        return len(self._refused)

    def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply, after the replies of every posted one.

        An error reply raises :class:`redis.ResponseError` (:class:`~redis.exceptions.
        NoScriptError` for ``NOSCRIPT``); a lost connection or a timeout raises redis-py's
        ``ConnectionError``/``TimeoutError`` once the retry policy gives up.
        """
        command = pack_command(args)
        if not self._lock.acquire(blocking=False):
            return self._execute_pooled(command)
        try:
            retry: Any = self._connection.retry
            return retry.call_with_retry(lambda: self._attempt(command), self._drop_after)
        finally:
            self._lock.release()

    def post(self, *args: str | bytes | int | float, source: str | None = None) -> None:
        """Send one command without waiting for its reply (``source``: the Lua script an
        ``EVALSHA`` runs). Raises first what earlier posted commands were refused with."""
        command = pack_command(args)
        if not self._lock.acquire(blocking=False):
            self._post_pooled(command, source)
            return
        try:
            self._raise_refused()
            posted = _Posted(command, source)
            retry: Any = self._connection.retry
            retry.call_with_retry(lambda: self._post(posted), self._drop_after)
        finally:
            self._lock.release()

    def flush(self) -> None:
        """Wait for the reply of every posted command; raise what any was refused with."""
        with self._lock:
            if self._posted:
                retry: Any = self._connection.retry
                retry.call_with_retry(self._answer_all, self._drop_after)
            self._raise_refused()

    def close(self) -> None:
        """Drop the connection; a later command connects again. Posted commands not
        answered yet are forgotten: :meth:`flush` first to wait for them."""
        with self._lock:
            self._drop()
            self._posted.clear()

    # -- on the connection, with the lock held -------------------------------------------------

    def _attempt(self, command: bytes) -> Any:
        sock = self._ready()
        return self._exchange(sock, command)

    def _post(self, posted: _Posted) -> None:
        source = posted.source
        if not self._posted:
            sock = self._ready()
            if self._fresh or (source is not None and source not in self._scripts):
                # The first command on a new connection, and a script's first run on it, wait
                # for the reply: a server just started or restarted may be loading its data or
                # lack the script, and nothing else may come to read the answer.
                _loading_on_noscript(lambda c: self._exchange(sock, c), posted.command, source)
                if source is not None:
                    self._scripts.add(source)
                return
        else:
            sock = self._sock_or_connect()
            try:
                self._read_available(sock)
            except redis.ConnectionError as exc:
                if isinstance(exc, BusyLoadingError):
                    raise
                sock = self._reconnect()
        pending = self._posted
        if pending and (
            len(pending) >= self.window or time.monotonic() - pending[0].sent_at > self.max_age
        ):
            self._answer_all()
            sock = self._sock_or_connect()
        if not posted.queued:  # a reconnect in an earlier attempt sent it already
            self._send(sock, posted)

    def _answer_all(self, *, reconnect: bool = True) -> None:
        """Read the reply of every posted command (sending some again, as they ask); a
        connection lost meanwhile is made again once (``reconnect``)."""
        sock = self._sock_or_connect()
        try:
            while self._posted:
                self._settle(self._read_reply(sock))
                sock = self._sock_or_connect()
        except redis.ConnectionError as exc:
            # LOADING is for the retry policy, which waits between attempts.
            if not reconnect or isinstance(exc, BusyLoadingError):
                raise
            self._reconnect()

    def _reconnect(self) -> socket.socket:
        """After the connection was lost with commands unanswered: a new one, on which they
        are sent again and answered. Its own failure is the caller's (and the retry policy's)."""
        logger.warning(
            "Lost the connection to Redis with %d command(s) unanswered; sending them again",
            len(self._posted),
        )
        self._drop()
        return self._connect()

    def _ready(self) -> socket.socket:
        """The connection for a command, every posted reply read; one the server closed (or
        that holds bytes nobody asked for) replaced, one idle too long checked first."""
        if self._posted:
            self._answer_all()
        sock = self._sock
        if sock is not None and (self._poller.poll(0) or self._reader.has_data()):
            # Said aloud, since a restart of Redis between two commands shows nowhere else;
            # quietly after a long idle spell, the likely work of Redis's ``timeout`` setting.
            idle = time.monotonic() - self._used_at
            level = logging.INFO if idle > IDLE_CLOSE else logging.WARNING
            logger.log(level, "Redis closed the connection (idle %.1f s); connecting again", idle)
            self._drop()
            sock = None
        if sock is None:
            sock = self._connect()
        idle = self._interval and time.monotonic() > self._check_after
        if idle and self._exchange(sock, _PING) != b"PONG":
            self._drop()
            raise redis.ConnectionError("Bad response from PING health check")
        return sock

    def _sock_or_connect(self) -> socket.socket:
        sock = self._sock
        return sock if sock is not None else self._connect()

    def _send(self, sock: socket.socket, posted: _Posted) -> None:
        """Send ``posted``, unanswered from now on: if the send fails, the next connection
        sends it again."""
        if not posted.queued:
            posted.queued = True
            self._posted.append(posted)
        posted.sent_at = time.monotonic()
        try:
            sock.sendall(posted.command)
        except OSError as exc:
            raise self._failed(exc, "writing to") from exc

    def _read_available(self, sock: socket.socket) -> None:
        """Settle the posted commands whose replies have arrived, without waiting."""
        reader = self._reader
        while self._posted and self._poller.poll(0):
            self._receive(sock)
            while self._posted and (reply := reader.gets()) is not False:
                if not isinstance(reply, hiredis.PushNotification):
                    self._settle(reply)

    def _read_reply(self, sock: socket.socket) -> Any:
        reader = self._reader
        reply = reader.gets()
        while reply is False or isinstance(reply, hiredis.PushNotification):
            self._receive(sock)
            reply = reader.gets()
        return reply

    def _receive(self, sock: socket.socket) -> None:
        try:
            read = sock.recv_into(self._buffer)
        except OSError as exc:
            raise self._failed(exc, "reading from") from exc
        if not read:
            self._drop()
            raise redis.ConnectionError("Connection closed by server.")
        self._reader.feed(self._buffer, 0, read)
        self._used_at = time.monotonic()

    def _settle(self, reply: Any) -> None:
        """The reply of the oldest posted command: done, sent again, or given up."""
        posted = self._posted.popleft()
        posted.queued = False
        if posted.loads is not None:
            self._loading.discard(posted.loads)
        if not isinstance(reply, hiredis.ReplyError):
            return
        message = str(reply)
        code = message.partition(" ")[0]
        if code == "NOSCRIPT" and posted.source is not None:
            # Sent again behind a SCRIPT LOAD of its source (one in flight serves them all).
            sock = self._sock_or_connect()
            source = posted.source
            if source not in self._loading:
                self._loading.add(source)
                load = pack_command(("SCRIPT", "LOAD", source))
                self._send(sock, _Posted(load, None, loads=source))
            self._send(sock, posted)
        elif code in ("LOADING", "READONLY"):
            # Not run: on a new connection (after the retry policy's wait), with the others.
            posted.queued = True
            self._posted.appendleft(posted)
            self._drop()
            raise _ERROR_REPLIES[code](message)
        else:
            self._refused.append(message)

    def _raise_refused(self) -> None:
        refused = self._refused
        if refused:
            self._refused = []
            raise redis.ResponseError(
                f"Redis refused {len(refused)} command(s) sent earlier without waiting: "
                f"{refused[0]}"
            )

    def _exchange(self, sock: socket.socket, command: bytes) -> Any:
        """Send ``command`` and read its reply; any failure drops the connection."""
        try:
            sock.sendall(command)
        except OSError as exc:
            raise self._failed(exc, "writing to") from exc
        try:
            reply = self._read_reply(sock)
        except BaseException:  # an interrupt half-way through a reply, say
            self._drop()
            raise
        self._fresh = False
        now = self._used_at = time.monotonic()
        if self._interval:
            self._check_after = now + self._interval
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            code, _, rest = message.partition(" ")
            error = _ERROR_REPLIES.get(code)
            raise error(rest) if error is not None else redis.ResponseError(message)
        return reply

    def _connect(self) -> socket.socket:
        """Connect; send again every posted command not answered on the last connection, and
        wait for their replies (a server that restarted may refuse them at first)."""
        connection = self._connection
        connection.connect()  # the handshake: TLS, AUTH/HELLO, SELECT, CLIENT SETNAME
        # redis-py keeps the connected socket private; nothing else reads it from here on.
        sock: socket.socket = connection._sock
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._reader = cast(_Reader, hiredis.Reader())
        self._check_after = time.monotonic() + self._interval
        self._fresh = True
        self._scripts = set()
        unanswered = self._posted
        if unanswered:
            now = time.monotonic()
            for posted in unanswered:
                posted.sent_at = now
            try:
                sock.sendall(b"".join(posted.command for posted in unanswered))
            except OSError as exc:  # still unanswered: the next connection tries again
                raise self._failed(exc, "writing to") from exc
            self._answer_all(reconnect=False)
        return sock

    def _failed(self, exc: OSError, doing: str) -> redis.RedisError:
        """The connection dropped after ``exc``, and the redis-py error that says so."""
        self._drop()
        if isinstance(exc, TimeoutError):  # socket.timeout
            return redis.TimeoutError(f"Timeout {doing} Redis")
        return redis.ConnectionError(f"Error {doing} Redis: {exc}")

    def _drop(self) -> None:
        self._sock = None
        self._connection.disconnect()

    def _drop_after(self, _error: Exception) -> None:
        self._drop()

    def _execute_pooled(self, command: bytes) -> Any:
        """The same command on a connection checked out of the pool."""
        pool = self._pool
        connection: Any = pool.get_connection()

        def attempt() -> object:
            connection.send_packed_command([command])
            return connection.read_response()

        def failed(_error: Exception) -> None:
            connection.disconnect()

        try:
            return connection.retry.call_with_retry(attempt, failed)
        finally:
            pool.release(connection)

    def _post_pooled(self, command: bytes, source: str | None) -> None:
        """A post while another thread holds the connection: sent on a pooled connection,
        waiting for its reply (loading the script if Redis asks)."""
        _loading_on_noscript(self._execute_pooled, command, source)

    def _forget_parent_connection(self) -> None:
        """In a forked child: the connection is the parent's; the child makes its own."""
        pool = self._pool
        self._lock = threading.Lock()
        self._connection = pool.connection_class(**pool.connection_kwargs)
        self._sock = None
        self._posted = deque()
        self._refused = []
        self._loading = set()
        self._fresh = True
        self._scripts = set()


def _loading_on_noscript(
    run: Callable[[bytes], object], command: bytes, source: str | None
) -> None:
    """``run(command)``, waiting for its reply; on NOSCRIPT, load ``source`` (the script the
    command's ``EVALSHA`` runs) and run it again."""
    try:
        run(command)
    except NoScriptError:
        if source is None:
            raise
        run(pack_command(("SCRIPT", "LOAD", source)))
        run(command)


_direct_connections: weakref.WeakSet[DirectConnection] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for direct in list(_direct_connections):
        direct._forget_parent_connection()  # pyright: ignore[reportPrivateUsage]


def _flush_at_exit() -> None:
    """A program that exits without closing its app still has its publishes answered, and
    one Redis refused said in the log."""
    for direct in list(_direct_connections):
        if direct.unanswered or direct.refused:
            try:
                direct.flush()
            except Exception as exc:  # at exit, nobody is left to raise to
                logger.error("At exit, Redis did not take what was published: %s", exc)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
