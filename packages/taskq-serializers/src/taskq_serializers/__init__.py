"""taskq serializers: message bodies in the formats Celery and kombu read and write.

``dumps``/``loads`` encode and decode bodies through the default :data:`registry` (json unless
told otherwise; pickle, yaml and msgpack only where ``accept`` names them); ``compress`` and
``decompress`` apply the ``compression`` header's methods, with a size limit on what comes out.
Importing this package imports no optional library: yaml, msgpack, brotli and zstandard are
imported the first time they are used.
"""

from __future__ import annotations

from taskq_serializers.base import (
    Compressor,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    ExtraNotInstalled,
    SerializationError,
    Serializer,
    UnknownCompression,
    UnknownSerializer,
)
from taskq_serializers.compression import (
    CompressorRegistry,
    compress,
    compressors,
    decompress,
)
from taskq_serializers.serialization import SerializerRegistry, dumps, loads, registry

__all__ = [
    "dumps",
    "loads",
    "registry",
    "SerializerRegistry",
    "compress",
    "decompress",
    "compressors",
    "CompressorRegistry",
    "Serializer",
    "Compressor",
    "SerializationError",
    "EncodeError",
    "DecodeError",
    "ContentDisallowed",
    "UnknownSerializer",
    "UnknownCompression",
    "ExtraNotInstalled",
]
