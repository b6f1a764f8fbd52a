"""The publishing connection: used by the calling thread under a lock, with confirms.

Confirms are pipelined: :meth:`Publisher.publish` with ``wait=False`` sends and returns
without waiting for this message's confirm. The unconfirmed messages are kept by delivery
tag; confirms are read as they arrive (a non-blocking read on every publish), and a publish
waits when more than ``confirm_window`` are unconfirmed or the oldest is older than
``confirm_max_age`` seconds. A nack or a lost connection sends the unconfirmed ones again
(on a new connection, retrying with backoff for ``publish_retry_timeout`` seconds): at
least once. ``wait=True`` (``publish_many``, and every publish with the ``confirm_publish``
option) and :meth:`Publisher.flush` (which :meth:`Publisher.close` runs) return only once
their messages are confirmed. Declarations and queue inspection travel on this connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskq.contracts import TransportError
from taskq_amqp import client, wire
from taskq_amqp.backoff import Backoff
from taskq_amqp.urls import AmqpSettings

__all__ = ["Outgoing", "Publisher"]

T = TypeVar("T")


#: A message RabbitMQ keeps refusing (nack) is given up after this many sends.
MAX_SENDS_AFTER_NACK = 5


#: Publishes are written to the socket in pieces of about this size (and the confirms that
#: came meanwhile read), so a large batch neither waits in one huge buffer nor lets confirms
#: pile up unread.
WRITE_SIZE = 1 << 17

#: The ``basic.publish`` method payloads kept per (exchange, routing key, mandatory).
METHOD_CACHE_SIZE = 256


@dataclass(slots=True)
class Outgoing:
    exchange: str
    routing_key: str
    #: The encoded basic properties (headers among them): see :func:`wire.encode_properties`.
    properties: bytes
    body: bytes
    mandatory: bool = False
    #: Handed to the publisher once (after that, resends are the publisher's business).
    sent: bool = False
    #: When it was last sent, for the age limit on unconfirmed messages.
    sent_at: float = 0.0
    nacks: int = 0
    #: Set when the broker confirmed it; ``returned`` when it could not route it.
    confirmed: bool = False
    returned: bool = False
    #: Nacked :data:`MAX_SENDS_AFTER_NACK` times: given up.
    refused: bool = False


class Publisher:
    def __init__(self, settings: AmqpSettings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._connection: client.Connection | None = None
        self._channel: client.Channel | None = None
        self._control: client.Channel | None = None
        #: Per connection: queues known to exist, delayed destinations bound, levels declared.
        self.known_queues: set[str] = set()
        self.delay_bound: set[str] = set()
        self.delay_levels_ready = False
        #: Sent on the current connection and not confirmed yet, by delivery tag (in order).
        self._pending: dict[int, Outgoing] = {}
        #: To send again: unconfirmed when a connection was lost, or nacked.
        self._resend: list[Outgoing] = []
        #: Given up after repeated nacks, not reported yet.
        self._refused: list[Outgoing] = []
        self._sequence = 0
        self._returns = 0
        self._channel_id = 0
        self._frame_max = 0
        self._methods: dict[tuple[str, str, bool], bytes] = {}
        #: Frames encoded and not written yet, and their size.
        self._out: list[bytes] = []
        self._out_size = 0

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> client.Connection:
        if self._connection is None:
            connection = client.open_connection(self._settings, heartbeat=0)
            channel = client.open_channel(connection)
            client.on_confirms(channel, self._on_ack, self._on_nack, self._on_return)
            self._connection, self._channel = connection, channel
            self._channel_id = client.channel_id(channel)
            self._frame_max = client.frame_max(connection)
            self._out.clear()
            self._out_size = 0
            self._control = None
            self._sequence = 0
            self._lose_pending()
            self.known_queues.clear()
            self.delay_bound.clear()
            self.delay_levels_ready = False
        return self._connection

    def _lose_pending(self) -> None:
        """The connection that carried the pending messages is gone: they go again."""
        self._resend[:0] = self._pending.values()
        self._pending.clear()

    def control(self) -> client.Channel:
        """A channel for declarations: a refusal there never closes the publishing channel."""
        connection = self._connect()
        if self._control is None or not self._control.is_open:
            self._control = client.open_channel(connection)
        return self._control

    def drop(self) -> None:
        connection, self._connection, self._channel, self._control = (
            self._connection,
            None,
            None,
            None,
        )
        self._lose_pending()
        self._out.clear()
        self._out_size = 0
        if connection is not None:
            with contextlib.suppress(Exception):  # tearing down a dead connection
                connection.collect()

    @property
    def unconfirmed(self) -> int:
        return len(self._pending) + len(self._resend)

    def close(self) -> None:
        """Wait for every outstanding confirm, then close (the connection closes even when
        the wait fails, and the failure is raised)."""
        with self._lock:
            try:
                self.flush()
            finally:
                connection = self._connection
                self._connection = self._channel = self._control = None
                if connection is not None:
                    try:
                        connection.close()
                    except Exception:
                        connection.collect()

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` (which uses :meth:`control`), reconnecting through losses."""
        with self._lock:
            deadline = time.monotonic() + self._settings.publish_retry_timeout
            backoff = Backoff()
            while True:
                try:
                    self._connect()
                    return operation()
                except client.CONNECTION_ERRORS as exc:
                    self.drop()
                    if time.monotonic() >= deadline:
                        raise TransportError(f"AMQP {what} failed: {exc}") from exc
                    time.sleep(backoff.next())
                except client.ChannelError as exc:
                    self._control = None
                    if self._channel is None or not self._channel.is_open:
                        self.drop()  # the publishing channel itself was closed: start over
                    raise TransportError(f"AMQP {what} refused: {exc}") from exc

    # -- confirms --------------------------------------------------------------------------

    def _on_ack(self, tag: int, multiple: bool) -> None:
        for outgoing in self._settle(tag, multiple):
            outgoing.confirmed = True

    def _on_nack(self, tag: int, multiple: bool) -> None:
        for outgoing in self._settle(tag, multiple):
            outgoing.nacks += 1
            if outgoing.nacks >= MAX_SENDS_AFTER_NACK:
                outgoing.refused = True
                self._refused.append(outgoing)
            else:
                self._resend.append(outgoing)

    def _on_return(self, *args: Any) -> None:
        self._returns += 1

    def _settle(self, tag: int, multiple: bool) -> list[Outgoing]:
        if not multiple:
            outgoing = self._pending.pop(tag, None)
            return [] if outgoing is None else [outgoing]
        settled: list[Outgoing] = []
        while self._pending:  # tags are in order: settle from the oldest up to ``tag``
            oldest = next(iter(self._pending))
            if oldest > tag:
                break
            settled.append(self._pending.pop(oldest))
        return settled

    def _on_frame(self, kind: int, channel: int, payload: bytes) -> bool:
        """A confirm on the publishing channel, read by :func:`client.read_available`."""
        if kind != wire.FRAME_METHOD or channel != self._channel_id:
            return False
        confirm = wire.confirm_of(payload)
        if confirm is None:
            return False
        method, tag, multiple = confirm
        if method == wire.BASIC_ACK:
            self._on_ack(tag, multiple)
        else:
            self._on_nack(tag, multiple)
        return True

    def _method(self, outgoing: Outgoing) -> bytes:
        key = (outgoing.exchange, outgoing.routing_key, outgoing.mandatory)
        method = self._methods.get(key)
        if method is None:
            if len(self._methods) >= METHOD_CACHE_SIZE:
                self._methods.clear()
            method = self._methods[key] = wire.publish_method(*key)
        return method

    def _send(self, outgoing: Outgoing) -> None:
        """Encode one publish behind the others not written yet; written once there are
        :data:`WRITE_SIZE` bytes of them, or by :meth:`_write`."""
        frames = wire.content_frames(
            self._channel_id,
            self._frame_max,
            self._method(outgoing),
            outgoing.properties,
            outgoing.body,
        )
        # RabbitMQ numbers the publishes of a channel in the order they arrive: frames
        # encoded here are written in this order before any later ones, or the connection
        # is dropped with them (and the pending messages sent again on a new one).
        self._sequence += 1
        self._pending[self._sequence] = outgoing
        outgoing.sent_at = time.monotonic()
        self._out.append(frames)
        self._out_size += len(frames)
        if self._out_size >= WRITE_SIZE:
            self._write()
            assert self._connection is not None
            self._read_confirms(self._connection)

    def _write(self) -> None:
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self._out_size = 0
            assert self._connection is not None
            client.write(self._connection, data)

    def _send_again(self) -> None:
        while self._resend:
            self._send(self._resend.pop(0))

    def _read_confirms(self, connection: client.Connection) -> None:
        """Whatever confirms have arrived, without blocking (one read of the socket)."""
        while client.read_available(connection, self._on_frame) >= client.READ_SIZE:
            pass  # a full read: there may be more

    def _over_limits(self) -> bool:
        if len(self._pending) > self._settings.confirm_window:
            return True
        if not self._pending:
            return False
        oldest = next(iter(self._pending.values()))
        return time.monotonic() - oldest.sent_at > self._settings.confirm_max_age

    def _wait_until(self, connection: client.Connection, done: Callable[[], bool]) -> None:
        while not done():
            self._send_again()
            self._write()
            if not self._pending:
                break  # nothing left that a confirm could settle
            if client.wait_readable(connection, 1.0):
                self._read_confirms(connection)

    def _report_refused(self) -> None:
        if self._refused:
            count, self._refused = len(self._refused), []
            raise TransportError(
                f"RabbitMQ refused {count} published message(s) (nack, "
                f"{MAX_SENDS_AFTER_NACK} times each)"
            )

    def publish(self, batch: list[Outgoing], *, wait: bool) -> None:
        """Send ``batch``; with ``wait``, return once each of its messages is confirmed,
        else once the unconfirmed messages are within the window. Unconfirmed messages go
        again after a nack or a loss."""

        def send() -> None:
            connection = self._connect()
            # Confirms that arrived since the last call settle first, so that a connection
            # found dead here does not send again messages RabbitMQ already confirmed.
            self._read_confirms(connection)
            self._send_again()
            for outgoing in batch:
                if outgoing.sent:
                    continue  # sent before a loss: in the resend list if still unconfirmed
                outgoing.sent = True
                returns_before = self._returns
                self._send(outgoing)
                if outgoing.mandatory:
                    # A return comes before the confirm of the same message: wait for it.
                    self._wait_until(connection, lambda o=outgoing: o.confirmed or o.refused)
                    outgoing.returned = self._returns > returns_before
            self._write()
            if wait:
                self._wait_until(connection, lambda: all(o.confirmed or o.refused for o in batch))
            else:
                self._wait_until(connection, lambda: not self._over_limits())
            self._report_refused()

        with self._lock:
            try:
                self.run("publish", send)
            except TransportError:
                # The caller is told this batch failed: it is not sent again behind its back.
                # Earlier publishes it was told succeeded stay queued for the next attempt.
                failed = {id(outgoing) for outgoing in batch}
                self._resend = [o for o in self._resend if id(o) not in failed]
                for tag in [t for t, o in self._pending.items() if id(o) in failed]:
                    del self._pending[tag]
                raise

    def flush(self) -> None:
        """Wait until every message published so far is confirmed (or refused: raised)."""
        with self._lock:
            if not self.unconfirmed:
                self._report_refused()
                return

            def wait() -> None:
                connection = self._connect()
                self._wait_until(connection, lambda: not self.unconfirmed)
                self._report_refused()

            self.run("flush", wait)
