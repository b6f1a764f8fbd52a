"""The only module that touches py-amqp: typed calls over its untyped API.

py-amqp is synchronous and not thread-safe: each :class:`Link` belongs to one thread at a
time (the publisher's lock or the consumer's I/O thread). Channels are opened with
``auto_decode=False``: py-amqp would otherwise turn bodies into ``str`` by their
content-encoding, and a transport hands out bytes exactly as published.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Mapping
from typing import Any

import amqp as _amqp_module  # pyright: ignore[reportMissingTypeStubs]

from taskq_amqp.urls import AmqpSettings

# py-amqp ships no annotations and the types a checker infers from its source are wrong in
# places (bodies typed ``str``, ``heartbeat`` ``int``): its objects are ``Any`` here, and
# the functions below give the rest of the package typed calls.
amqp: Any = _amqp_module

__all__ = [
    "Channel",
    "Connection",
    "Message",
    "CONNECTION_ERRORS",
    "ChannelError",
    "NotFound",
    "PreconditionFailed",
    "open_connection",
    "open_channel",
    "socket_of",
    "has_buffered_input",
]

Connection = Any
Channel = Any
Message = Any
ChannelError: type[Exception] = amqp.exceptions.ChannelError
NotFound: type[Exception] = amqp.exceptions.NotFound
PreconditionFailed: type[Exception] = amqp.exceptions.PreconditionFailed

#: Errors after which the connection is unusable and must be opened again.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.IrrecoverableConnectionError,
    AttributeError,  # py-amqp after its transport was torn down (``None`` socket)
    AssertionError,  # py-amqp's frame reader after a half-read frame on a dead socket
)


def open_connection(settings: AmqpSettings, *, heartbeat: float) -> Connection:
    connection = amqp.Connection(
        host=f"{settings.host}:{settings.port}",
        userid=settings.userid,
        password=settings.password,
        virtual_host=settings.virtual_host,
        ssl=settings.ssl,
        heartbeat=heartbeat,
        connect_timeout=settings.connect_timeout,
        client_properties={"product": "taskq"},
    )
    connection.connect()
    return connection


def open_channel(connection: Connection) -> Channel:
    channel = amqp.Channel(connection, auto_decode=False)
    channel.open()
    return channel


def socket_of(connection: Connection) -> socket.socket:
    sock: socket.socket | None = connection.transport.sock
    if sock is None:
        raise OSError("the AMQP connection has no socket")
    return sock


def has_buffered_input(connection: Connection) -> bool:
    """Whether a frame may be ready without the socket turning readable (py-amqp's own
    buffer, or bytes TLS already decrypted)."""
    transport = connection.transport
    if getattr(transport, "_read_buffer", b""):
        return True
    pending = getattr(transport.sock, "pending", None)
    return bool(pending and pending())


def readable_now(connection: Connection) -> bool:
    """Whether more input is there right now (buffered, or on the socket)."""
    if has_buffered_input(connection):
        return True
    readable, _, _ = select.select([socket_of(connection)], [], [], 0)
    return bool(readable)


def drain(connection: Connection, timeout: float) -> bool:
    """Read and dispatch one method; False when nothing came within ``timeout``."""
    try:
        connection.drain_events(timeout=timeout)
    except TimeoutError:
        return False
    return True


def make_message(body: bytes, properties: Mapping[str, Any], headers: Mapping[str, Any]) -> Message:
    return amqp.Message(body, application_headers=dict(headers), **properties)


def message_parts(message: Message) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Body, basic properties (without headers) and headers of a received message."""
    properties: dict[str, Any] = dict(message.properties)
    headers: dict[str, Any] = dict(properties.pop("application_headers", None) or {})
    raw: Any = message.body
    body = raw.encode() if isinstance(raw, str) else bytes(raw)
    return body, properties, headers


def delivery_info(message: Message) -> dict[str, Any]:
    info: dict[str, Any] = dict(message.delivery_info)
    return info


def on_confirms(
    channel: Channel,
    on_ack: Callable[[int, bool], None],
    on_nack: Callable[[int, bool], None],
    on_return: Callable[..., None],
) -> None:
    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_nack)
    channel.events["basic_return"].add(on_return)
    channel.confirm_select()
