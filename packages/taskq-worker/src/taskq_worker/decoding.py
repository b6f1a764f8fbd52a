"""From a delivery to a task message, or to the reason it cannot be one.

Decompress per the ``compression`` header, deserialize if ``accept_content`` allows the
content type (a signed message is verified here, by the ``auth`` serializer), then read the
protocol. Whatever goes wrong, and poison messages can make anything go wrong, ends in
:class:`Undeliverable` with a one-line reason for the dead-letter header and the log: a bad
message is refused, never fatal.

The worker receives with :meth:`Decoder.receive`, which reads only the headers it decides on
(name, id, eta, expires, time limits) and keeps the rest as the serializer gave it: see
:class:`Received`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any, cast

from taskq.contracts import Delivery
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import TaskMessage
from taskq_protocol.fields import parse_datetime
from taskq_serializers import SerializationError, decompress, registry

__all__ = ["Undeliverable", "Decoder", "Received"]


class Undeliverable(Exception):
    """A delivery that cannot become a task message; ``str()`` is the reason."""


class Received:
    """A task message as the worker holds it: the headers it decides on, read; the rest kept.

    Every message passes through the worker's one consumer thread, while the prefork pool runs
    tasks in several processes. Building the whole message model (args, kwargs, embed, every
    header checked) costs more than everything else the consumer does with a message, so it is
    built the first time something asks for :attr:`message`: with the prefork pool, in the
    child that runs the task. A pickled ``Received`` carries the raw parts, never the model.

    The body is deserialized on receipt all the same (content type accepted, signature
    verified, protocol v2 shape), so what cannot be read at all is refused there. A message the
    model then refuses (a header of the wrong type, say) is refused by whoever builds it, with
    the same reason: the tracer dead-letters it. A task acknowledged before it runs is built
    on receipt, since nothing could dead-letter it afterwards.
    """

    __slots__ = (
        "_headers",
        "_message",
        "_payload",
        "_properties",
        "eta",
        "expires",
        "id",
        "name",
        "timelimit",
    )

    def __init__(
        self,
        headers: Mapping[str, Any],
        properties: Mapping[str, Any],
        payload: object,
        message: TaskMessage | None = None,
    ) -> None:
        self._headers = headers
        self._properties = properties
        self._payload = payload
        self._message = message
        if message is not None:
            self._read_model(message)
        elif not self._read_headers(headers):
            self._read_model(self.message)

    # -- what the consumer decides on ------------------------------------------------------

    id: str
    name: str
    #: ``eta`` and ``expires`` as Unix times (naive timestamps are UTC, as Celery's are).
    eta: float | None
    expires: float | None
    #: ``(hard, soft)`` seconds from the ``timelimit`` header.
    timelimit: tuple[float | None, float | None]

    @property
    def message(self) -> TaskMessage:
        """The whole message, built on first use; :class:`Undeliverable` if it cannot be."""
        message = self._message
        if message is None:
            try:
                message = TaskMessage.decode(self._headers, self._properties, self._payload)
            except Exception as exc:  # anything a malformed message triggers: refused
                raise Undeliverable(f"cannot decode: {type(exc).__name__}: {exc}") from exc
            self._message = message
        return message

    @property
    def argsrepr(self) -> str | None:
        """The sender's repr of the arguments (for logs), without building the message."""
        value = self._headers.get("argsrepr")
        return value if isinstance(value, str) else None

    # -- pickling: the raw parts, not the model ----------------------------------------------

    def __getstate__(self) -> tuple[Any, ...]:
        return (
            self._headers,
            self._properties,
            self._payload,
            self.id,
            self.name,
            self.eta,
            self.expires,
            self.timelimit,
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (
            self._headers,
            self._properties,
            self._payload,
            self.id,
            self.name,
            self.eta,
            self.expires,
            self.timelimit,
        ) = state
        self._message = None

    # -- reading -----------------------------------------------------------------------------

    def _read_headers(self, headers: Mapping[str, Any]) -> bool:
        """Read the headers of a protocol v2 message in its usual form; False for anything
        else (protocol v1, a hybrid, an odd value), which the model then reads or refuses."""
        payload = self._payload
        if not isinstance(payload, list) or len(cast("list[object]", payload)) != 3:
            return False
        name, task_id = headers.get("task"), headers.get("id")
        if type(name) is not str or type(task_id) is not str:
            return False
        eta, expires = headers.get("eta"), headers.get("expires")
        try:
            self.timelimit = _timelimit(headers.get("timelimit"))
            self.eta = None if eta is None else _timestamp(eta)
            self.expires = None if expires is None else _timestamp(expires)
        except (TypeError, ValueError):
            return False
        self.name, self.id = name, task_id
        return True

    def _read_model(self, message: TaskMessage) -> None:
        headers = message.headers
        self.name, self.id, self.timelimit = headers.task, headers.id, headers.timelimit
        self.eta = None if headers.eta is None else _utc(headers.eta).timestamp()
        self.expires = None if headers.expires is None else _utc(headers.expires).timestamp()


class Decoder:
    """Decodes deliveries for one worker; ``accept_content`` is resolved once, here."""

    __slots__ = ("accept",)

    def __init__(self, accept_content: Collection[str]) -> None:
        try:
            self.accept = registry.accept_content_types(accept_content)
        except (SerializationError, TypeError) as exc:
            raise ImproperlyConfigured("accept_content", str(exc)) from exc

    def receive(self, delivery: Delivery) -> Received:
        """Deserialize the body and read the headers the worker decides on (see
        :class:`Received`); :class:`Undeliverable` with the reason if that fails."""
        envelope = delivery.envelope
        try:
            return Received(envelope.headers, envelope.properties, self._payload(delivery))
        except Undeliverable:
            raise
        except Exception as exc:  # anything a malformed message triggers: refused, not fatal
            raise Undeliverable(f"cannot decode: {type(exc).__name__}: {exc}") from exc

    def decode(self, delivery: Delivery) -> TaskMessage:
        """The whole task message of a delivery, or :class:`Undeliverable`."""
        return self.receive(delivery).message

    def _payload(self, delivery: Delivery) -> object:
        envelope = delivery.envelope
        body = envelope.body
        compression = envelope.headers.get("compression")
        if compression:
            body = decompress(body, str(compression))
        return registry.loads(
            body, envelope.content_type, envelope.content_encoding, accept=self.accept
        )


def _timestamp(value: object) -> float:
    """An ``eta``/``expires`` header as a Unix time; TypeError or ValueError if it is not one."""
    if not isinstance(value, str):
        raise TypeError(value)
    return _utc(parse_datetime(value, "headers")).timestamp()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _timelimit(value: object) -> tuple[float | None, float | None]:
    """``[hard, soft]`` as the model reads it; ValueError for anything the model should judge."""
    if value is None:
        return (None, None)
    items = cast("list[object]", value) if isinstance(value, list) else None
    if items is None or len(items) != 2:
        raise ValueError("expected [hard, soft]")
    return (_seconds(items[0]), _seconds(items[1]))


def _seconds(value: object) -> float | None:
    """None, or a finite number of seconds that is not negative (NaN fails the test)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf:
        return value
    raise ValueError(value)
