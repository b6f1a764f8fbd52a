"""The publishing connection: used by the calling thread under a lock, with confirms.

Every publish waits for RabbitMQ's confirm, so a message handed to :meth:`publish` is on
the broker (written to disk for a durable queue and a persistent message) when it returns.
When the connection drops, the messages not confirmed yet are published again on a new
one (at least once), retrying with backoff for ``publish_retry_timeout`` seconds.
Declarations and queue inspection travel on this connection too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskq.contracts import TransportError
from taskq_amqp import client
from taskq_amqp.backoff import Backoff
from taskq_amqp.urls import AmqpSettings

__all__ = ["Outgoing", "Publisher"]

T = TypeVar("T")


@dataclass(slots=True)
class Outgoing:
    exchange: str
    routing_key: str
    message: client.Message
    mandatory: bool = False
    #: Set when the broker confirmed it; ``returned`` when it could not route it.
    confirmed: bool = False
    returned: bool = False


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
        self._pending: dict[int, Outgoing] = {}
        self._sequence = 0
        self._nacked = False
        self._returns = 0

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> client.Connection:
        if self._connection is None:
            connection = client.open_connection(self._settings, heartbeat=0)
            channel = client.open_channel(connection)
            client.on_confirms(channel, self._on_ack, self._on_nack, self._on_return)
            self._connection, self._channel = connection, channel
            self._control = None
            self._sequence = 0
            self._pending.clear()
            self.known_queues.clear()
            self.delay_bound.clear()
            self.delay_levels_ready = False
        return self._connection

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
        if connection is not None:
            with contextlib.suppress(Exception):  # tearing down a dead connection
                connection.collect()

    def close(self) -> None:
        with self._lock:
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
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked = True
        self._settle(tag, multiple)

    def _on_return(self, *args: Any) -> None:
        self._returns += 1

    def _settle(self, tag: int, multiple: bool) -> None:
        tags = [t for t in self._pending if t <= tag] if multiple else [tag]
        for settled in tags:
            outgoing = self._pending.pop(settled, None)
            if outgoing is not None:
                outgoing.confirmed = True

    def publish(self, batch: list[Outgoing]) -> None:
        """Publish and wait for every confirm; unconfirmed ones go again after a loss."""

        def send() -> None:
            connection = self._connect()
            channel = self._channel
            assert channel is not None
            self._nacked = False
            for outgoing in batch:
                if outgoing.confirmed:
                    continue
                returns_before = self._returns
                self._sequence += 1
                self._pending[self._sequence] = outgoing
                channel.basic_publish(
                    outgoing.message,
                    exchange=outgoing.exchange,
                    routing_key=outgoing.routing_key,
                    mandatory=outgoing.mandatory,
                )
                if outgoing.mandatory:
                    # A return comes before the confirm of the same message: wait for it.
                    while not outgoing.confirmed:
                        client.drain(connection, 1.0)
                    outgoing.returned = self._returns > returns_before
            while self._pending:
                client.drain(connection, 1.0)
            if self._nacked:
                raise TransportError("RabbitMQ refused a published message (nack)")

        self.run("publish", send)
