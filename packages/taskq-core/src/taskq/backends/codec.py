"""Result records as bytes: the one encoding every result backend shares.

A backend stores what Celery's stores hold: the meta dict (``ResultMeta.to_dict``, with the
``result_extended`` fields when configured) serialized with ``result_serializer``, and reads it
back with that serializer's content type, refusing it unless ``result_accept_content`` allows
it, as Celery does. Group records are ``{"result": <GroupResult tuple>}`` in the same format.
Keeping this here means a Redis or S3 backend writes byte for byte what a Celery client reads.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from taskq.contracts import BackendOptions
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import MalformedMessage, ResultMeta
from taskq_serializers import SerializerRegistry, UnknownSerializer
from taskq_serializers import registry as default_registry

__all__ = ["ResultCodec"]


class ResultCodec:
    """Encodes result metas and group records with one serializer, decodes what ``accept`` allows.

    ``accept`` holds content types or serializer names (``result_accept_content``). It must
    allow the serializer itself, or a backend could not read its own writes: that fails here,
    at start, naming the setting.
    """

    __slots__ = (
        "_accept",
        "_registry",
        "content_encoding",
        "content_type",
        "extended",
        "serializer",
    )

    def __init__(
        self,
        serializer: str = "json",
        accept: Collection[str] = frozenset({"application/json"}),
        *,
        extended: bool = False,
        registry: SerializerRegistry = default_registry,
    ) -> None:
        try:
            chosen = registry.get(serializer)
            self._accept = registry.accept_content_types(accept)
        except UnknownSerializer as exc:
            raise ImproperlyConfigured("result_serializer", str(exc)) from exc
        if chosen.content_type not in self._accept:
            raise ImproperlyConfigured(
                "result_accept_content",
                f"it must allow the result_serializer {serializer!r} ({chosen.content_type}), "
                "or stored results could not be read back; add it",
            )
        self.serializer = chosen.name
        self.content_type = chosen.content_type
        self.content_encoding = chosen.content_encoding
        self.extended = extended
        self._registry = registry

    @classmethod
    def from_options(cls, options: BackendOptions) -> ResultCodec:
        return cls(options.serializer, options.accept, extended=options.extended)

    # -- task results ---------------------------------------------------------------------------

    def encode_meta(self, meta: ResultMeta) -> bytes:
        return self.encode(meta.to_dict(extended=self.extended))

    def decode_meta(self, data: bytes, task_id: str) -> ResultMeta:
        """The stored meta; ``task_id`` fills in records written without one (old Celery)."""
        return ResultMeta.from_dict(self.decode(data), task_id=task_id)

    # -- group records --------------------------------------------------------------------------

    def encode_group(self, result_tuple: list[Any]) -> bytes:
        return self.encode({"result": result_tuple})

    def decode_group(self, data: bytes) -> list[Any]:
        record: object = self.decode(data)
        result: object = (
            cast("dict[str, object]", record).get("result") if isinstance(record, dict) else None
        )
        if not isinstance(result, list):
            raise MalformedMessage("group.result", f"expected a result tuple, got {record!r}")
        return cast("list[Any]", result)

    # -- any value ------------------------------------------------------------------------------

    def encode(self, value: object) -> bytes:
        return self._registry.dumps(value, self.serializer)[2]

    def decode(self, data: bytes) -> Any:
        return self._registry.loads(
            data, self.content_type, self.content_encoding, accept=self._accept
        )
