"""The only module that touches py-amqp: typed calls over its untyped API.

py-amqp is synchronous and not thread-safe: each :class:`Link` belongs to one thread at a
time (the publisher's lock or the consumer's I/O thread). Channels are opened with
``auto_decode=False``: py-amqp would otherwise turn bodies into ``str`` by their
content-encoding, and a transport hands out bytes exactly as published.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import amqp as _amqp_module  # pyright: ignore[reportMissingTypeStubs]

from taskq_amqp.certificates import TlsSettings
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
    "readable_now",
    "wait_readable",
    "drain",
    "write",
    "frame_max",
    "read_available",
    "channel_id",
    "forget_consumer",
    "is_tls",
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


class _TlsTransport(amqp.transport.SSLTransport):  # pyright: ignore[reportUntypedBaseClass]
    """py-amqp's TLS transport, wrapping its socket in the context taskq built: py-amqp
    builds a context of its own from a dict, and ignores an :class:`ssl.SSLContext`."""

    def __init__(self, tls: TlsSettings, host: str, **kwargs: Any) -> None:
        self.tls = tls
        super().__init__(host, ssl=True, **kwargs)  # pyright: ignore[reportUnknownMemberType]

    def _wrap_socket(self, sock: socket.socket, **_: Any) -> ssl.SSLSocket:
        return self.tls.wrap(sock)


class _TlsConnection(amqp.Connection):  # pyright: ignore[reportUntypedBaseClass]
    """A py-amqp connection over :class:`_TlsTransport`."""

    def __init__(self, tls: TlsSettings, **kwargs: Any) -> None:
        self.tls = tls
        super().__init__(ssl=True, **kwargs)  # pyright: ignore[reportUnknownMemberType]

    def Transport(  # py-amqp's name: the factory of the connection's transport
        self,
        host: str,
        connect_timeout: float | None,
        _ssl: object = False,  # py-amqp's own TLS options: the context in self.tls instead
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        return _TlsTransport(
            self.tls,
            host,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            **kwargs,
        )


def open_connection(settings: AmqpSettings, *, heartbeat: float) -> Connection:
    """A connection, opened; a certificate that fails the TLS handshake raises
    ImproperlyConfigured (see :mod:`taskq_amqp.certificates`), never worth a retry."""
    arguments: dict[str, Any] = {
        "host": f"{settings.host}:{settings.port}",
        "userid": settings.userid,
        "password": settings.password,
        "virtual_host": settings.virtual_host,
        "heartbeat": heartbeat,
        "connect_timeout": settings.connect_timeout,
        "client_properties": {"product": "taskq"},
    }
    tls = settings.tls
    if tls is None:
        connection = amqp.Connection(**arguments)
        connection.connect()
        return connection
    connection = _TlsConnection(tls, **arguments)
    try:
        connection.connect()  # py-amqp closes the socket when this fails
    except ssl.SSLError as exc:
        error = tls.error(exc, f"{settings.host}:{settings.port}")
        if error is None:
            raise
        raise error from exc
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
    """Whether a frame may be ready without the socket turning readable: over TLS, py-amqp's
    own buffer or bytes TLS already decrypted. On a plain socket, :func:`read_available`
    leaves only the start of an incomplete frame in py-amqp's buffer, which waits for the
    socket like the rest of that frame."""
    transport = connection.transport
    pending = getattr(transport.sock, "pending", None)
    if pending is None:
        return False
    return bool(transport._read_buffer) or bool(pending())


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
    """Confirm mode; confirms py-amqp reads itself (TLS, or while it waits for a reply of
    its own) reach the same callbacks as those :func:`read_available` hands over."""
    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_nack)
    channel.events["basic_return"].add(on_return)
    channel.confirm_select()


def forget_consumer(channel: Channel, tag: str) -> None:
    """Drop py-amqp's callbacks of a consumer cancelled with ``nowait`` (py-amqp drops them
    when the reply comes, and none comes)."""
    channel.callbacks.pop(tag, None)
    channel.cancel_callbacks.pop(tag, None)


def channel_id(channel: Channel) -> int:
    number: int = channel.channel_id
    return number


def frame_max(connection: Connection) -> int:
    """The largest frame the broker takes (negotiated when the connection opened)."""
    size: int = connection.frame_max
    return size


def is_tls(connection: Connection) -> bool:
    """Over TLS, :func:`read_available` lets py-amqp read (and dispatch) every frame."""
    return isinstance(socket_of(connection), ssl.SSLSocket)


def write(connection: Connection, data: bytes) -> None:
    """Frames encoded by :mod:`taskq_amqp.wire`, in one socket write."""
    connection.transport.write(data)


def wait_readable(connection: Connection, timeout: float) -> bool:
    """Wait up to ``timeout`` for input (buffered, or on the socket)."""
    if has_buffered_input(connection):
        return True
    readable, _, _ = select.select([socket_of(connection)], [], [], timeout)
    return bool(readable)


#: How much one read takes from the socket: many frames (confirms, deliveries) at once.
READ_SIZE = 1 << 16

_frame_start = struct.Struct(">BHI").unpack_from
_method_sig = struct.Struct(">HH").unpack_from
_body_size = struct.Struct(">Q").unpack_from
#: Methods followed by a content header and body frames (basic.deliver, return, get-ok).
_CONTENT_METHODS = frozenset({(60, 60), (60, 50), (60, 71)})


def _content_complete(buffer: bytes, offset: int, channel: int) -> bool:
    """Whether the content header and body frames of the content method that ends at
    ``offset`` are all in ``buffer`` (RabbitMQ writes them together, right after it)."""
    size = len(buffer)
    expected, remaining = 2, -1
    while remaining != 0:
        if size - offset < 8:
            return False
        kind, frame_channel, length = _frame_start(buffer, offset)
        end = offset + 7 + length
        if end >= size:
            return False
        if kind != expected or frame_channel != channel:
            return True  # not RabbitMQ's layout: frame by frame, as before
        if kind == 2:
            (remaining,) = _body_size(buffer, offset + 11)
            expected = 3
        else:
            remaining -= length
        offset = end + 1
    return True


def read_available(connection: Connection, on_frame: Callable[[int, int, bytes], bool]) -> int:
    """Read what has arrived, without blocking, and hand each complete frame to
    ``on_frame(type, channel, payload)``; a frame it does not take (returns False) goes to
    py-amqp's own frame handler, so channel and connection methods reach py-amqp as if it
    had read them. A partial frame stays in py-amqp's read buffer for the next read.

    Returns how many bytes were read from the socket (0: nothing there). py-amqp reads a
    frame in three reads (header, payload, end octet) after a ``select``; this is one
    ``recv`` for everything there. Over TLS, py-amqp reads (frame by frame). A message
    (method, content header, body) is handed over only once all its frames are in.
    """
    transport = connection.transport
    sock = socket_of(connection)
    if is_tls(connection):
        if not readable_now(connection):
            return 0
        drain(connection, 1.0)
        return 1
    # A message still coming in stays whole in the buffer, which each read copies: reading
    # at least as much as is buffered keeps a large message's copies linear in its size.
    try:
        data = sock.recv(max(READ_SIZE, len(transport._read_buffer)), socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        data = b""
    else:
        if not data:
            raise OSError("the broker closed the connection")
    buffer: bytes = transport._read_buffer + data if data else transport._read_buffer
    offset, size = 0, len(buffer)
    handle: Callable[[tuple[int, int, bytes]], Any] = connection.on_inbound_frame
    taken = False
    while size - offset >= 8:
        kind, channel, length = _frame_start(buffer, offset)
        end = offset + 7 + length
        if end >= size:
            break
        if buffer[end] != 0xCE:
            raise amqp.exceptions.UnexpectedFrame(
                f"AMQP frame without its end octet (type {kind}, {length} bytes)"
            )
        payload = buffer[offset + 7 : end]
        if (
            kind == 1
            and _method_sig(payload, 0) in _CONTENT_METHODS
            and not _content_complete(buffer, end + 1, channel)
        ):
            # A message is handed over whole or not at all: py-amqp may read the socket
            # itself before the next call, and must then find the message from its start.
            break
        offset = end + 1
        if on_frame(kind, channel, payload):
            taken = True
            continue
        # py-amqp may read more itself while it handles this frame (a reply it waits for):
        # it reads from its buffer first, so the rest of ours goes there before.
        transport._read_buffer = buffer[offset:]
        handle((kind, channel, payload))
        buffer, offset, size = transport._read_buffer, 0, len(transport._read_buffer)
    transport._read_buffer = buffer[offset:] if offset else buffer
    if taken:
        connection.bytes_recv += 1  # for py-amqp's heartbeat check: the broker is alive
    return len(data)
