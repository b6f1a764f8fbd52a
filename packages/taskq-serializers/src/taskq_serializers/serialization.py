"""The serializer registry: which format a name or content type means, and what a receiver reads.

It mirrors kombu's ``kombu.serialization`` registry, because Celery code and configuration speak
its terms: ``dumps`` returns ``(content_type, content_encoding, body)`` in kombu's order, ``loads``
takes ``accept`` as names or content types (``accept_content``), and ``disable_insecure`` is
kombu's ``disable_insecure_serializers``, which Celery's ``setup_security`` calls.

Where kombu is lax, this registry is strict, so that a worker only decodes what its
configuration names:

- ``accept=None`` accepts json only (Celery's default ``accept_content``), where kombu accepts
  every registered type that is not disabled.
- A disabled content type is refused even when ``accept`` names it; ``force=True`` bypasses both
  checks (a signed or decrypted body, whose sender is already trusted, is decoded that way).

Content without a type is ``application/data`` and, like ``application/text``, is taken as plain
bytes or text whatever ``accept`` says, as kombu does: decoding it runs no format's code, unless
a serializer (Celery's ``auth``) is registered for that type.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

from taskq_serializers.base import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializationError,
    Serializer,
    UnknownSerializer,
)
from taskq_serializers.plugins import EntryPointLoader, lookup_failure

__all__ = [
    "ENTRY_POINT_GROUP",
    "RAW",
    "RAW_CONTENT_TYPE",
    "TRUSTED_CONTENT",
    "DEFAULT_ACCEPT",
    "SerializerRegistry",
    "registry",
    "dumps",
    "loads",
]

#: Where built-in and third-party serializers are found.
ENTRY_POINT_GROUP = "taskq.serializers"
#: The ``dumps`` serializer name that sends bytes or text as they are (kombu's ``raw``).
RAW = "raw"
#: The content type of raw bodies, and of bodies that name no content type at all.
RAW_CONTENT_TYPE = "application/data"
#: Plain data: accepted whatever ``accept`` says, as kombu's ``TRUSTED_CONTENT``.
TRUSTED_CONTENT = frozenset({RAW_CONTENT_TYPE, "application/text"})
#: What ``loads`` accepts when ``accept`` is None: Celery's default ``accept_content``.
DEFAULT_ACCEPT = frozenset({"application/json"})
# Encodings kombu hands back as bytes instead of decoding to text.
_BINARY_ENCODINGS = frozenset({"binary", "ascii-8bit"})


class SerializerRegistry:
    """Serializers by name and by content type, with the receiving side's allow and deny lists.

    ``SerializerRegistry()`` starts empty and stays so until something is registered;
    :meth:`with_defaults` finds the built-in formats and installed plugins through the
    ``taskq.serializers`` entry points, the first time a lookup misses.
    """

    def __init__(self, *, entry_point_group: str | None = None) -> None:
        self._by_name: dict[str, Serializer] = {}
        self._by_type: dict[str, Serializer] = {}
        self._disabled: set[str] = set()
        self._plugins = (
            EntryPointLoader(entry_point_group, Serializer) if entry_point_group else None
        )

    @classmethod
    def with_defaults(cls) -> SerializerRegistry:
        """A registry holding json, pickle, yaml, msgpack and every installed plugin."""
        return cls(entry_point_group=ENTRY_POINT_GROUP)

    # -- what is registered ---------------------------------------------------------------------

    def register(self, serializer: Serializer) -> None:
        """Add ``serializer`` under its name and content type, replacing one of the same name.

        A serializer registered later for a content type another one already has takes that
        content type over for decoding, as in kombu.
        """
        previous = self._by_name.get(serializer.name)
        self._by_name[serializer.name] = serializer
        if previous is not None:
            self._release_content_type(previous)
        self._by_type[serializer.content_type] = serializer

    def unregister(self, name: str) -> None:
        """Remove the serializer called ``name``; UnknownSerializer if there is none."""
        # Load the plugins first, or a plugin removed before discovery would come back with it.
        self._discover()
        serializer = self._by_name.pop(name, None)
        if serializer is None:
            raise UnknownSerializer(self._unknown(name))
        self._release_content_type(serializer)

    def _release_content_type(self, gone: Serializer) -> None:
        # Hand the content type back to another serializer that still declares it, if any.
        if self._by_type.get(gone.content_type) is not gone:
            return
        del self._by_type[gone.content_type]
        for other in self._by_name.values():
            if other.content_type == gone.content_type:
                self._by_type[other.content_type] = other

    def get(self, name: str) -> Serializer:
        """The serializer called ``name``, or serving ``name`` when it is a content type."""
        found = self._lookup(self._by_type if "/" in name else self._by_name, name)
        if found is None:
            raise UnknownSerializer(self._unknown(name))
        return found

    def for_content_type(self, content_type: str) -> Serializer:
        """The serializer that decodes ``content_type``."""
        found = self._lookup(self._by_type, content_type)
        if found is None:
            raise UnknownSerializer(self._unknown(content_type))
        return found

    def _lookup(self, table: dict[str, Serializer], key: str) -> Serializer | None:
        found = table.get(key)
        if found is None:
            self._discover()
            found = table.get(key)
        return found

    def _discover(self) -> None:
        if self._plugins is not None:
            self._plugins.load_once(self._add_plugin)

    def _add_plugin(self, serializer: Serializer) -> None:
        # What was registered by hand before discovery wins over a plugin of the same name.
        if serializer.name not in self._by_name:
            self.register(serializer)

    def _unknown(self, key: str) -> str:
        broken = self._plugins.broken if self._plugins is not None else {}
        return lookup_failure("serializer", key, self._by_name, broken, self._by_type)

    # -- sending --------------------------------------------------------------------------------

    def dumps(self, obj: object, serializer: str = "json") -> tuple[str, str, bytes]:
        """Encode ``obj``: ``(content_type, content_encoding, body)``, in kombu's order.

        ``serializer="raw"`` sends bytes as they are (``application/data``, ``binary``) and str
        as UTF-8 (``application/data``, ``utf-8``), as kombu's ``raw`` does.
        """
        if serializer == RAW:
            return _raw(obj)
        chosen = self.get(serializer)
        try:
            body = chosen.dumps(obj)
        except SerializationError:
            raise
        except Exception as exc:  # a plugin that broke its contract; never let it escape bare
            raise EncodeError(
                f"the {chosen.name} serializer failed: {type(exc).__name__}: {exc}"
            ) from exc
        return chosen.content_type, chosen.content_encoding, body

    # -- receiving ------------------------------------------------------------------------------

    def loads(
        self,
        data: bytes,
        content_type: str,
        content_encoding: str,
        accept: Collection[str] | None = None,
        force: bool = False,
    ) -> object:
        """Decode a body by its content type, if this receiver accepts that type.

        ``accept`` holds names or content types; None means json only. ``force`` skips the
        accept and disabled checks. A body of a type no serializer handles (``application/data``,
        ``text/plain``) comes back as bytes for a binary encoding, else as text.
        """
        content_type = content_type or RAW_CONTENT_TYPE
        if not force:
            self._check_allowed(content_type, accept)
        serializer = self._lookup(self._by_type, content_type)
        if serializer is None:
            return _plain(data, content_encoding)
        try:
            return serializer.loads(data)
        except SerializationError:
            raise
        except Exception as exc:  # a plugin that broke its contract; never let it escape bare
            raise DecodeError(
                f"the {serializer.name} serializer failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _check_allowed(self, content_type: str, accept: Collection[str] | None) -> None:
        if (
            isinstance(accept, frozenset)
            and content_type in accept
            and content_type not in self._disabled
        ):
            # The worker's hot path: accept_content resolved once by accept_content_types().
            return
        allowed = DEFAULT_ACCEPT if accept is None else self.accept_content_types(accept)
        if content_type in self._disabled:
            raise ContentDisallowed(content_type, allowed, disabled=True)
        if content_type not in allowed and content_type not in TRUSTED_CONTENT:
            raise ContentDisallowed(content_type, allowed)

    def accept_content_types(self, accept: Collection[str]) -> frozenset[str]:
        """``accept_content`` as content types: names resolved here, content types kept.

        kombu's ``prepare_accept_content``. A name nobody registered is UnknownSerializer, so a
        typo in the configuration fails loudly instead of refusing every message.
        """
        if isinstance(accept, str):
            raise TypeError(f"accept must be a collection of names, not the string {accept!r}")
        return frozenset(item if "/" in item else self.get(item).content_type for item in accept)

    # -- switching formats off ------------------------------------------------------------------

    def disable(self, name: str) -> None:
        """Refuse incoming data of this name or content type, even when ``accept`` names it."""
        self._disabled.add(self._content_type_of(name))

    def enable(self, name: str) -> None:
        """Undo :meth:`disable` for this name or content type."""
        self._disabled.discard(self._content_type_of(name))

    def disable_insecure(self, allowed: Collection[str] | None = ("json",)) -> None:
        """Disable every registered format except ``allowed`` (None: disable them all).

        kombu's ``disable_insecure_serializers``. Only what is registered now is disabled, after
        loading every plugin; a serializer registered later starts enabled. Sending is unaffected.
        """
        self._discover()
        keep = self.accept_content_types(allowed or ())
        self._disabled.update(ct for ct in self._by_type if ct not in keep)
        self._disabled.difference_update(keep)

    def _content_type_of(self, name: str) -> str:
        return name if "/" in name else self.get(name).content_type


def _raw(obj: object) -> tuple[str, str, bytes]:
    if isinstance(obj, bytes):
        return RAW_CONTENT_TYPE, "binary", obj
    if isinstance(obj, (bytearray, memoryview)):
        return RAW_CONTENT_TYPE, "binary", bytes(cast("bytearray | memoryview[int]", obj))
    if isinstance(obj, str):
        try:
            return RAW_CONTENT_TYPE, "utf-8", obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"raw text is not valid Unicode: {exc}") from exc
    raise EncodeError(f"the raw serializer sends bytes or str, not {type(obj).__name__}")


def _plain(data: bytes, content_encoding: str) -> bytes | str:
    # kombu's fallback for content no serializer handles: text in its declared encoding.
    encoding = (content_encoding or "utf-8").lower()
    if encoding in _BINARY_ENCODINGS:
        return data
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise DecodeError(f"unknown content encoding {content_encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"body is not valid {encoding}: {exc}") from exc


#: The registry taskq uses unless told otherwise.
registry = SerializerRegistry.with_defaults()
dumps = registry.dumps
loads = registry.loads
