"""MessagePack, configured as kombu configures it so both sides read each other's bytes.

kombu packs with ``use_bin_type=True`` (bytes stay bytes, str stays str) and unpacks with
``raw=False`` (str comes back as str), leaving msgpack's other defaults alone: arrays come back
as lists and map keys must be str or bytes. msgpack has no datetime, Decimal or UUID here, as in
kombu. The library is imported on first use: ``pip install 'taskq[msgpack]'``.
"""

from __future__ import annotations

from typing import Protocol, cast

from taskq_serializers.base import DecodeError, EncodeError
from taskq_serializers.plugins import import_extra

__all__ = ["MsgpackSerializer", "MSGPACK_SERIALIZER"]


class _Msgpack(Protocol):
    """The part of the (untyped) msgpack module used here."""

    UnpackException: type[Exception]

    def packb(self, o: object, /, *, use_bin_type: bool) -> bytes: ...

    def unpackb(self, packed: bytes, /, *, raw: bool) -> object: ...


def _msgpack() -> _Msgpack:
    module = import_extra(
        "msgpack", what="the msgpack serializer", library="msgpack", extra="msgpack"
    )
    return cast("_Msgpack", module)


class MsgpackSerializer:
    """``application/x-msgpack``, binary."""

    name = "msgpack"
    content_type = "application/x-msgpack"
    content_encoding = "binary"

    def dumps(self, obj: object, /) -> bytes:
        msgpack = _msgpack()
        try:
            return msgpack.packb(obj, use_bin_type=True)
        # TypeError: unsupported type; OverflowError: int beyond 64 bits; ValueError: nested too
        # deeply, or a str that is not valid Unicode.
        except (TypeError, OverflowError, ValueError) as exc:
            raise EncodeError(f"cannot encode as msgpack: {exc}") from exc

    def loads(self, data: bytes, /) -> object:
        msgpack = _msgpack()
        try:
            return msgpack.unpackb(data, raw=False)
        # msgpack's format, extra-data and incomplete-input errors are all ValueErrors.
        except (ValueError, msgpack.UnpackException) as exc:
            raise DecodeError(f"cannot decode msgpack: {exc}") from exc


MSGPACK_SERIALIZER = MsgpackSerializer()
