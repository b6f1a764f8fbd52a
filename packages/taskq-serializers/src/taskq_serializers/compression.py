"""Body compression as kombu does it, with decompression that cannot be used as a memory bomb.

kombu compresses the serialized body and writes the method's *mime type* in the ``compression``
header (``application/x-gzip`` for zlib, not ``"zlib"``); a receiver looks that value up as mime
type or alias. The table, as in ``kombu/compression.py``:

==========  =======================  ===================  ==========
method      mime type (the header)   kombu's aliases      extra
==========  =======================  ===================  ==========
zlib        application/x-gzip       gzip, zlib           (stdlib)
bzip2       application/x-bz2        bzip2, bzip          (stdlib)
lzma        application/x-lzma       lzma, xz             (stdlib)
brotli      application/x-brotli     brotli               brotli
zstd        application/zstd         zstd, zstandard      zstd
==========  =======================  ===================  ==========

Despite its mime type, "gzip" is the zlib format (``zlib.compress``), as kombu writes it.

A few kilobytes of compressed input can expand to gigabytes, and a worker decompresses whatever
the broker hands it, so every decompressor stops once its output passes ``max_size`` (256 MiB
unless configured) and raises ``DecodeError``, having held little more than that. Input must be
complete, and hold nothing after the compressed data but further bzip2 or lzma streams.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol, cast

from taskq_serializers.base import (
    Compressor,
    DecodeError,
    EncodeError,
    ExtraNotInstalled,
    SerializationError,
    UnknownCompression,
)
from taskq_serializers.plugins import EntryPointLoader, import_extra, lookup_failure

__all__ = [
    "ENTRY_POINT_GROUP",
    "DEFAULT_MAX_SIZE",
    "ZlibCompressor",
    "Bzip2Compressor",
    "LzmaCompressor",
    "BrotliCompressor",
    "ZstdCompressor",
    "ZLIB",
    "BZIP2",
    "LZMA",
    "BROTLI",
    "ZSTD",
    "CompressorRegistry",
    "compressors",
    "compress",
    "decompress",
]

#: Where built-in and third-party compressors are found.
ENTRY_POINT_GROUP = "taskq.compressors"
#: The most a decompressed body may hold unless configured otherwise: 256 MiB.
DEFAULT_MAX_SIZE = 256 * 1024 * 1024


def _too_large(name: str, max_size: int) -> DecodeError:
    return DecodeError(
        f"{name} body decompresses to more than max_size ({max_size} bytes); refusing it. "
        "Raise max_size if bodies this large are expected."
    )


# -- zlib, bzip2, lzma: the standard library's incremental decompressors --------------------------


class _Decompressor(Protocol):
    """What zlib's, bz2's and lzma's decompressor objects have in common."""

    def decompress(self, data: bytes, /, max_length: int) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


def _decompress_streams(
    name: str,
    new: Callable[[], _Decompressor],
    error: type[Exception],
    data: bytes,
    max_size: int,
    *,
    concatenated: bool,
) -> bytes:
    """Decompress one stream, or several back to back when ``concatenated`` (bzip2, xz).

    Each call asks for at most one byte more than the budget left, so an oversized body is
    detected after producing ``max_size + 1`` bytes and no more.
    """
    if not data:
        raise DecodeError(f"{name} body is empty")
    chunks: list[bytes] = []
    total = 0
    rest = data
    while rest:
        stream = new()
        try:
            chunk = stream.decompress(rest, max_size - total + 1)
        except error as exc:
            raise DecodeError(f"corrupt {name} body: {exc}") from exc
        total += len(chunk)
        if total > max_size:
            raise _too_large(name, max_size)
        if not stream.eof:
            raise DecodeError(f"{name} body is truncated")
        chunks.append(chunk)
        rest = stream.unused_data
        if rest and not concatenated:
            raise DecodeError(f"{name} body has {len(rest)} bytes after the end of its stream")
    return b"".join(chunks)


class ZlibCompressor:
    """zlib, sent as ``application/x-gzip``; ``level`` defaults to zlib's (6), as kombu's."""

    name = "zlib"
    content_type = "application/x-gzip"
    aliases = ("gzip", "zlib")

    def __init__(self, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self.level = level

    def compress(self, data: bytes, /) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        return _decompress_streams(
            "zlib", zlib.decompressobj, zlib.error, data, max_size, concatenated=False
        )


class Bzip2Compressor:
    """bzip2, ``application/x-bz2``; ``level`` defaults to bz2's (9), as kombu's."""

    name = "bzip2"
    content_type = "application/x-bz2"
    aliases = ("bzip2", "bzip")

    def __init__(self, level: int = 9) -> None:
        self.level = level

    def compress(self, data: bytes, /) -> bytes:
        return bz2.compress(data, self.level)

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        # bz2 reports corrupt input as OSError.
        return _decompress_streams(
            "bzip2", bz2.BZ2Decompressor, OSError, data, max_size, concatenated=True
        )


class LzmaCompressor:
    """xz, ``application/x-lzma``; reads .xz and legacy .lzma, as ``lzma.decompress`` does."""

    name = "lzma"
    content_type = "application/x-lzma"
    aliases = ("lzma", "xz")

    def __init__(self, preset: int | None = None) -> None:
        self.preset = preset

    def compress(self, data: bytes, /) -> bytes:
        return lzma.compress(data, preset=self.preset)

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        return _decompress_streams(
            "lzma", lzma.LZMADecompressor, lzma.LZMAError, data, max_size, concatenated=True
        )


# -- brotli -------------------------------------------------------------------------------------


class _BrotliStream(Protocol):
    def process(self, data: bytes, /, output_buffer_limit: int) -> bytes: ...

    def is_finished(self) -> bool: ...


class _Brotli(Protocol):
    """The part of the (untyped) brotli module used here."""

    error: type[Exception]

    def compress(self, data: bytes, /) -> bytes: ...

    def Decompressor(self) -> _BrotliStream: ...  # the module's class, hence the name


def _brotli() -> _Brotli:
    module = import_extra("brotli", what="brotli compression", library="brotli", extra="brotli")
    return cast("_Brotli", module)


class BrotliCompressor:
    """brotli, ``application/x-brotli``, at brotli's default quality (11), as kombu's.

    Decompression streams with ``output_buffer_limit`` (brotli 1.2 or newer), so output is
    produced in bounded pieces and checked against ``max_size`` as it comes.
    """

    name = "brotli"
    content_type = "application/x-brotli"
    aliases = ("brotli",)

    def compress(self, data: bytes, /) -> bytes:
        return _brotli().compress(data)

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        brotli = _brotli()
        stream = brotli.Decompressor()
        chunks: list[bytes] = []
        total = 0
        try:
            chunk = stream.process(data, output_buffer_limit=max_size + 1)
            while True:
                total += len(chunk)
                if total > max_size:
                    raise _too_large(self.name, max_size)
                chunks.append(chunk)
                if stream.is_finished():
                    return b"".join(chunks)
                # All input is in; only pending output may follow. None means it was cut short.
                chunk = stream.process(b"", output_buffer_limit=max_size - total + 1)
                if not chunk:
                    raise DecodeError("brotli body is truncated")
        except brotli.error as exc:
            raise DecodeError(f"corrupt brotli body: {exc}") from exc


# -- zstd ---------------------------------------------------------------------------------------


def _zstandard():  # the zstandard module itself, typed by the package
    try:
        import zstandard
    except ImportError as exc:
        raise ExtraNotInstalled("zstd compression", "zstandard", "zstd") from exc
    return zstandard


class ZstdCompressor:
    """zstd, ``application/zstd``, one frame at level 3 (zstd's default, as kombu's).

    Frames carry a checksum, which kombu's decoder verifies too, so a corrupted body fails
    instead of decoding to different bytes.

    The frame's declared content size is checked against ``max_size`` before anything is
    allocated; a frame that declares none is decompressed into at most ``max_size`` bytes.
    Only a single frame is read, which is what taskq and kombu write.
    """

    name = "zstd"
    content_type = "application/zstd"
    aliases = ("zstd", "zstandard")

    def __init__(self, level: int = 3) -> None:
        self.level = level

    def compress(self, data: bytes, /) -> bytes:
        zstandard = _zstandard()
        return zstandard.ZstdCompressor(level=self.level, write_checksum=True).compress(data)

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        zstandard = _zstandard()
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"corrupt zstd body: {exc}") from exc
        if declared > max_size:
            raise _too_large(self.name, max_size)
        try:
            return zstandard.ZstdDecompressor().decompress(
                data, max_output_size=max_size, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            unbounded = " (or it is larger than max_size)" if declared < 0 else ""
            raise DecodeError(f"corrupt zstd body{unbounded}: {exc}") from exc


ZLIB = ZlibCompressor()
BZIP2 = Bzip2Compressor()
LZMA = LzmaCompressor()
BROTLI = BrotliCompressor()
ZSTD = ZstdCompressor()


# -- the registry -------------------------------------------------------------------------------


class CompressorRegistry:
    """Compressors by name, alias and mime type, and the size limit for decompressed bodies.

    ``CompressorRegistry()`` starts empty; :meth:`with_defaults` finds the built-in methods and
    installed plugins through the ``taskq.compressors`` entry points on the first lookup that
    misses.
    """

    def __init__(
        self, *, entry_point_group: str | None = None, max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        self._by_key: dict[str, Compressor] = {}
        self._by_name: dict[str, Compressor] = {}
        self.max_size = max_size
        self._plugins = (
            EntryPointLoader(entry_point_group, Compressor) if entry_point_group else None
        )

    @classmethod
    def with_defaults(cls, *, max_size: int = DEFAULT_MAX_SIZE) -> CompressorRegistry:
        """A registry holding zlib, bzip2, lzma, brotli, zstd and every installed plugin."""
        return cls(entry_point_group=ENTRY_POINT_GROUP, max_size=max_size)

    def register(self, compressor: Compressor) -> None:
        """Add ``compressor`` under its name, aliases and mime type; replaces the same name."""
        previous = self._by_name.get(compressor.name)
        if previous is not None:
            self._drop_keys(previous)
        self._by_name[compressor.name] = compressor
        for key in (compressor.name, compressor.content_type, *compressor.aliases):
            self._by_key[key] = compressor

    def unregister(self, name: str) -> None:
        """Remove the compressor called ``name``; UnknownCompression if there is none."""
        # Load the plugins first, or a plugin removed before discovery would come back with it.
        self._discover()
        compressor = self._by_name.pop(name, None)
        if compressor is None:
            raise UnknownCompression(self._unknown(name))
        self._drop_keys(compressor)

    def _drop_keys(self, gone: Compressor) -> None:
        for key in [key for key, value in self._by_key.items() if value is gone]:
            del self._by_key[key]

    def get(self, key: str) -> Compressor:
        """The compressor for a name, an alias (``gzip``) or a mime type (``application/zstd``)."""
        found = self._by_key.get(key)
        if found is None:
            self._discover()
            found = self._by_key.get(key)
        if found is None:
            raise UnknownCompression(self._unknown(key))
        return found

    def _discover(self) -> None:
        if self._plugins is not None:
            self._plugins.load_once(self._add_plugin)

    def _add_plugin(self, compressor: Compressor) -> None:
        # What was registered by hand before discovery wins over a plugin of the same name.
        if compressor.name not in self._by_name:
            self.register(compressor)

    def _unknown(self, key: str) -> str:
        broken = self._plugins.broken if self._plugins is not None else {}
        return lookup_failure("compression", key, self._by_name, broken, self._by_key)

    def compress(self, body: bytes, method: str) -> tuple[bytes, str]:
        """Compress ``body``: ``(compressed, mime type for the compression header)``."""
        compressor = self.get(method)
        try:
            return compressor.compress(body), compressor.content_type
        except SerializationError:
            raise
        except Exception as exc:  # a plugin that broke its contract; never let it escape bare
            raise EncodeError(
                f"the {compressor.name} compressor failed: {type(exc).__name__}: {exc}"
            ) from exc

    def decompress(self, body: bytes, content_type: str, max_size: int | None = None) -> bytes:
        """Decompress ``body`` by the ``compression`` header's value (mime type or alias).

        ``max_size`` overrides the registry's limit for this call.
        """
        compressor = self.get(content_type)
        limit = self.max_size if max_size is None else max_size
        try:
            return compressor.decompress(body, max_size=limit)
        except SerializationError:
            raise
        except Exception as exc:  # a plugin that broke its contract; never let it escape bare
            raise DecodeError(
                f"the {compressor.name} compressor failed: {type(exc).__name__}: {exc}"
            ) from exc


#: The registry taskq uses unless told otherwise.
compressors = CompressorRegistry.with_defaults()
compress = compressors.compress
decompress = compressors.decompress
