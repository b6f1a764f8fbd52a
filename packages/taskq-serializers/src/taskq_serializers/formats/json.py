"""JSON, the default format: what Celery sends unless told otherwise.

The encoding itself, including kombu's ``__type__``/``__value__`` markers for datetimes, Decimal,
UUID and bytes, lives in :mod:`taskq_protocol.jsoncodec`, because the protocol package writes its
envelopes with it too. This module only adapts it to the serializer interface and its errors.
"""

from __future__ import annotations

from taskq_protocol import errors as protocol_errors
from taskq_protocol import jsoncodec
from taskq_serializers.base import DecodeError, EncodeError

__all__ = ["JSONSerializer", "JSON_SERIALIZER"]


class JSONSerializer:
    """``application/json`` in UTF-8, as kombu writes it."""

    name = "json"
    content_type = "application/json"
    content_encoding = "utf-8"

    def dumps(self, obj: object, /) -> bytes:
        try:
            return jsoncodec.dumps(obj)
        except (TypeError, RecursionError) as exc:
            raise EncodeError(f"cannot encode as json: {exc}") from exc

    def loads(self, data: bytes, /) -> object:
        try:
            return jsoncodec.loads(data)
        except protocol_errors.DecodeError as exc:
            raise DecodeError(f"cannot decode json: {exc.reason}") from exc


JSON_SERIALIZER = JSONSerializer()
