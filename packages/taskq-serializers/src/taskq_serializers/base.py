"""What a serializer and a compressor are, and the errors the registry raises.

A serializer turns a Python object into bytes and back, and names the ``content_type`` and
``content_encoding`` a message carries so the receiver knows how to read it. A compressor turns
bytes into fewer bytes and names the mime type that goes into the ``compression`` header. Both
are plain objects: anything with these attributes can be registered, by hand or through the
``taskq.serializers`` / ``taskq.compressors`` entry points.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = [
    "Serializer",
    "Compressor",
    "SerializationError",
    "EncodeError",
    "DecodeError",
    "ContentDisallowed",
    "UnknownSerializer",
    "UnknownCompression",
]


@runtime_checkable
class Serializer(Protocol):
    """Turns objects into bytes and back for one content type.

    ``name`` is what users put in ``task_serializer`` and ``accept_content`` (``"json"``);
    ``content_type`` is the mime type on the wire (``"application/json"``); ``content_encoding``
    is ``"utf-8"`` for text formats and ``"binary"`` for the others, as kombu writes them.
    """

    @property
    def name(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content_encoding(self) -> str: ...

    def dumps(self, obj: object, /) -> bytes:
        """Encode ``obj``. Raises ``EncodeError`` for what the format cannot hold."""
        ...

    def loads(self, data: bytes, /) -> object:
        """Decode ``data``. Raises ``DecodeError`` for input that is not of this format."""
        ...


@runtime_checkable
class Compressor(Protocol):
    """Compresses bytes; ``content_type`` is the mime type kombu writes in ``compression``."""

    @property
    def name(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    def compress(self, data: bytes, /) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


class SerializationError(Exception):
    """Base of every error this package raises."""


class EncodeError(SerializationError, TypeError):
    """An object could not be encoded with the chosen serializer."""


class DecodeError(SerializationError, ValueError):
    """Bytes could not be decoded: corrupt, truncated, or not of the declared content type."""


class ContentDisallowed(SerializationError):
    """A message's content type is not in the accepted list (``accept_content``).

    Refusing is the safe default: pickle and yaml can run code while decoding, so a worker only
    reads the formats its configuration names.
    """

    def __init__(self, content_type: str, accepted: frozenset[str]) -> None:
        allowed = ", ".join(sorted(accepted)) or "nothing"
        super().__init__(
            f"refusing to deserialize content of type {content_type!r}: accept_content allows "
            f"{allowed}. Add it to accept_content only if every sender is trusted."
        )
        self.content_type = content_type
        self.accepted = accepted


class UnknownSerializer(SerializationError, LookupError):
    """No serializer is registered under a name or content type."""


class UnknownCompression(SerializationError, LookupError):
    """No compressor is registered under a name, alias or mime type."""
