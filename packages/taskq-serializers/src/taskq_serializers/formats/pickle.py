"""Pickle: any Python object, for senders and receivers that trust each other completely.

Unpickling runs code chosen by whoever wrote the bytes, so a registry refuses pickle unless
``accept`` names it. It is here because Celery users rely on it for objects JSON cannot hold.

Bodies are written with protocol 4, kombu's default (its ``pickle_protocol``): every Celery
worker on a supported Python reads it, while protocol 5 would break workers on Python 3.7.
"""

from __future__ import annotations

import pickle

from taskq_serializers.base import DecodeError, EncodeError

__all__ = ["PICKLE_PROTOCOL", "PickleSerializer", "PICKLE_SERIALIZER"]

#: The protocol kombu writes by default; any Celery worker reads it.
PICKLE_PROTOCOL = 4


class PickleSerializer:
    """``application/x-python-serialize``, binary."""

    name = "pickle"
    content_type = "application/x-python-serialize"
    content_encoding = "binary"

    def __init__(self, protocol: int = PICKLE_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, obj: object, /) -> bytes:
        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except Exception as exc:  # __reduce__ and friends are user code and may raise anything
            raise EncodeError(f"cannot encode as pickle: {type(exc).__name__}: {exc}") from exc

    def loads(self, data: bytes, /) -> object:
        try:
            return pickle.loads(data)  # reached only when accept names pickle
        except Exception as exc:  # corrupt input fails in any constructor or import it names
            raise DecodeError(f"cannot decode pickle: {type(exc).__name__}: {exc}") from exc


PICKLE_SERIALIZER = PickleSerializer()
