"""What a serializer and a compressor are, and the errors the registry raises.

A serializer turns a Python object into bytes and back, and names the ``content_type`` and
``content_encoding`` a message carries so the receiver knows how to read it. A compressor turns
bytes into fewer bytes and names the mime type that goes into the ``compression`` header. Both
are plain objects: anything with these attributes can be registered, by hand or through the
``taskq.serializers`` / ``taskq.compressors`` entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    "ExtraNotInstalled",
    "INSTALL_COMMANDS",
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
    """Compresses bytes; ``content_type`` is the mime type kombu writes in ``compression``.

    ``aliases`` are the other names kombu looks the method up by (``gzip`` for zlib).
    ``decompress`` must stop once its output passes ``max_size`` bytes and raise ``DecodeError``:
    a few kilobytes of compressed input can expand to gigabytes, and a worker decompresses
    whatever the broker hands it.
    """

    @property
    def name(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    def compress(self, data: bytes, /) -> bytes: ...

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes: ...


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

    ``disabled`` says the type was refused because it is switched off on the registry
    (``disable``/``disable_insecure``) rather than missing from ``accepted``.
    """

    def __init__(
        self, content_type: str, accepted: frozenset[str], *, disabled: bool = False
    ) -> None:
        if disabled:
            why = "it is disabled for incoming data (disable_insecure). Enable it"
        else:
            allowed = ", ".join(sorted(accepted)) or "nothing"
            why = f"accept_content allows {allowed}. Add it to accept_content"
        super().__init__(
            f"refusing to deserialize content of type {content_type!r}: {why} only if every "
            "sender is trusted."
        )
        self.content_type = content_type
        self.accepted = accepted
        self.disabled = disabled

    def __reduce__(self) -> tuple[object, ...]:
        # The default would call __init__ with the message alone; errors cross process pools.
        return (_content_disallowed, (self.content_type, self.accepted, self.disabled))


class UnknownSerializer(SerializationError, LookupError):
    """No serializer is registered under a name or content type."""


class UnknownCompression(SerializationError, LookupError):
    """No compressor is registered under a name, alias or mime type."""


#: The command that installs each extra, written out whole (not built from the extra's name) so
#: that ``tools/check_workspace.py`` can check every hint against the real extras.
INSTALL_COMMANDS: Mapping[str, str] = {
    "auth": "pip install 'taskq[auth]'",
    "encryption": "pip install 'taskq[encryption]'",
    "msgpack": "pip install 'taskq[msgpack]'",
    "yaml": "pip install 'taskq[yaml]'",
    "brotli": "pip install 'taskq[brotli]'",
    "zstd": "pip install 'taskq[zstd]'",
}


class ExtraNotInstalled(SerializationError, ImportError):
    """A format or compression needs a third-party library that is not installed.

    The message names the pip extra that brings it in, so the fix is one copy-paste away.
    """

    def __init__(self, what: str, library: str, extra: str) -> None:
        install = INSTALL_COMMANDS.get(extra, f"pip install {library}")
        super().__init__(f"{what} needs {library}, which is not installed: {install}", name=library)
        self.what = what
        self.library = library
        self.extra = extra

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.what, self.library, self.extra))


def _content_disallowed(
    content_type: str, accepted: frozenset[str], disabled: bool
) -> ContentDisallowed:
    return ContentDisallowed(content_type, accepted, disabled=disabled)
