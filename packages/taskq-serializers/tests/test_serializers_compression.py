"""Compression: kombu's names and mime types, round trips, corrupt input, the size limit."""

from __future__ import annotations

import bz2
import contextlib
import importlib.metadata
import lzma
import sys
import tracemalloc
import zlib
from collections.abc import Callable

import brotli  # pyright: ignore[reportMissingTypeStubs]
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from taskq_serializers import (
    Compressor,
    CompressorRegistry,
    DecodeError,
    EncodeError,
    ExtraNotInstalled,
    UnknownCompression,
    compress,
    decompress,
)
from taskq_serializers.compression import (
    BROTLI,
    BZIP2,
    DEFAULT_MAX_SIZE,
    LZMA,
    ZLIB,
    ZSTD,
)

ALL = [ZLIB, BZIP2, LZMA, BROTLI, ZSTD]
# (name, mime type, aliases) as in kombu/compression.py.
KOMBU_TABLE = [
    ("zlib", "application/x-gzip", ("gzip", "zlib")),
    ("bzip2", "application/x-bz2", ("bzip2", "bzip")),
    ("lzma", "application/x-lzma", ("lzma", "xz")),
    ("brotli", "application/x-brotli", ("brotli",)),
    ("zstd", "application/zstd", ("zstd", "zstandard")),
]
PAYLOAD = bytes(range(256)) * 40 + b"taskq " * 2000


def _name(compressor: Compressor) -> str:
    return compressor.name


@pytest.fixture
def reg() -> CompressorRegistry:
    return CompressorRegistry.with_defaults()


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "mime", "aliases"), KOMBU_TABLE)
def test_names_mime_types_and_aliases_are_kombus(
    reg: CompressorRegistry, name: str, mime: str, aliases: tuple[str, ...]
) -> None:
    compressor = reg.get(name)
    assert isinstance(compressor, Compressor)
    assert (compressor.content_type, compressor.aliases) == (mime, aliases)
    for key in (mime, *aliases):
        assert reg.get(key) is compressor


def test_installed_entry_points_name_the_compressors() -> None:
    points = {
        ep.name: ep.value for ep in importlib.metadata.entry_points(group="taskq.compressors")
    }
    assert {name: points.get(name) for name, _, _ in KOMBU_TABLE} == {
        "zlib": "taskq_serializers.compression:ZLIB",
        "bzip2": "taskq_serializers.compression:BZIP2",
        "lzma": "taskq_serializers.compression:LZMA",
        "brotli": "taskq_serializers.compression:BROTLI",
        "zstd": "taskq_serializers.compression:ZSTD",
    }


def test_unknown_method_suggests_the_close_one(reg: CompressorRegistry) -> None:
    with pytest.raises(UnknownCompression, match="Did you mean 'gzip'"):
        reg.get("gzp")


@pytest.mark.parametrize(("key", "extra"), [("brotli", "brotli"), ("application/zstd", "zstd")])
def test_unknown_optional_method_names_its_extra(key: str, extra: str) -> None:
    with pytest.raises(UnknownCompression, match=rf"pip install 'taskq\[{extra}\]'"):
        CompressorRegistry().get(key)


def test_register_replace_and_unregister() -> None:
    reg = CompressorRegistry()
    reg.register(ZLIB)
    assert reg.get("gzip") is ZLIB
    faster = type(ZLIB)(level=1)
    reg.register(faster)
    assert reg.get("application/x-gzip") is faster
    reg.unregister("zlib")
    with pytest.raises(UnknownCompression):
        reg.get("gzip")
    with pytest.raises(UnknownCompression):
        reg.unregister("zlib")


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compressor", ALL, ids=_name)
@given(data=st.binary(max_size=4096))
def test_round_trip(compressor: Compressor, data: bytes) -> None:
    body, mime = compress(data, compressor.name)
    assert mime == compressor.content_type
    assert decompress(body, mime) == data
    for alias in compressor.aliases:
        assert decompress(body, alias) == data


@pytest.mark.parametrize(
    ("method", "stdlib_decompress"),
    [("zlib", zlib.decompress), ("bzip2", bz2.decompress), ("lzma", lzma.decompress)],
)
def test_output_is_what_the_standard_library_reads(
    method: str, stdlib_decompress: Callable[[bytes], bytes]
) -> None:
    body, _ = compress(PAYLOAD, method)
    assert stdlib_decompress(body) == PAYLOAD


@pytest.mark.parametrize(
    ("method", "concatenate"),
    [
        ("bzip2", lambda a, b: bz2.compress(a) + bz2.compress(b)),
        ("xz", lambda a, b: lzma.compress(a) + lzma.compress(b)),
    ],
)
def test_concatenated_streams_decode_like_the_standard_library(
    method: str, concatenate: Callable[[bytes, bytes], bytes]
) -> None:
    assert decompress(concatenate(b"first ", b"second"), method) == b"first second"


def test_legacy_lzma_format_is_read() -> None:
    legacy = lzma.compress(PAYLOAD, format=lzma.FORMAT_ALONE)
    assert decompress(legacy, "application/x-lzma") == PAYLOAD


def test_zstd_frame_without_content_size_is_read() -> None:
    body = zstandard.ZstdCompressor(write_content_size=False).compress(PAYLOAD)
    assert decompress(body, "zstd") == PAYLOAD


# -- corrupt input -------------------------------------------------------------------------------


def _corruptions(body: bytes) -> dict[str, bytes]:
    middle = len(body) // 2
    return {
        "empty": b"",
        "truncated": body[:-4],
        "trailing": body + b"\x00junk",
        "garbage": b"this is not compressed at all",
        "flipped": body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :],
    }


# brotli has no checksum, so a flipped literal byte decodes to other bytes without complaint.
CORRUPTIONS = [
    pytest.param(compressor, kind, id=f"{compressor.name}-{kind}")
    for compressor in ALL
    for kind in ("empty", "truncated", "trailing", "garbage", "flipped")
    if not (compressor is BROTLI and kind == "flipped")
]


@pytest.mark.parametrize(("compressor", "kind"), CORRUPTIONS)
def test_corrupt_input_raises_decode_error(compressor: Compressor, kind: str) -> None:
    bad = _corruptions(compressor.compress(PAYLOAD))[kind]
    with pytest.raises(DecodeError, match=compressor.name):
        decompress(bad, compressor.content_type)


@pytest.mark.parametrize("compressor", ALL, ids=_name)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decompress_or_raise_decode_error(
    compressor: Compressor, data: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        compressor.decompress(data, max_size=1 << 20)


# -- the size limit ------------------------------------------------------------------------------

BOMB_SIZE = 64 * 1024 * 1024
LIMIT = 1024 * 1024

# Each builds a body that expands to BOMB_SIZE zero bytes, at the fastest settings.
BOMBS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": lambda data: zlib.compress(data, 1),
    "bzip2": lambda data: bz2.compress(data, 1),
    "lzma": lambda data: lzma.compress(data, preset=0),
    "brotli": lambda data: brotli.compress(data, quality=0),  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType]
    "zstd": lambda data: zstandard.ZstdCompressor(level=1).compress(data),
}


@pytest.fixture(scope="module")
def zeros() -> bytes:
    return bytes(BOMB_SIZE)


@pytest.mark.parametrize("method", list(BOMBS))
def test_a_decompression_bomb_is_stopped_near_the_limit(method: str, zeros: bytes) -> None:
    bomb = BOMBS[method](zeros)
    reg = CompressorRegistry.with_defaults(max_size=LIMIT)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="more than max_size"):
            reg.decompress(bomb, method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Never anywhere near the 64 MiB the body expands to.
    assert peak < 4 * LIMIT


def test_zstd_without_content_size_is_held_to_the_limit(zeros: bytes) -> None:
    bomb = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="larger than max_size"):
            ZSTD.decompress(bomb, max_size=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * LIMIT


@pytest.mark.parametrize("compressor", ALL, ids=_name)
def test_a_body_of_exactly_the_limit_passes(compressor: Compressor) -> None:
    body = compressor.compress(PAYLOAD)
    assert compressor.decompress(body, max_size=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(DecodeError, match="more than max_size"):
        compressor.decompress(body, max_size=len(PAYLOAD) - 1)


def test_the_limit_is_configurable_per_registry_and_per_call() -> None:
    assert DEFAULT_MAX_SIZE == 256 * 1024 * 1024
    reg = CompressorRegistry.with_defaults(max_size=10)
    body, mime = reg.compress(b"x" * 11, "zlib")
    with pytest.raises(DecodeError, match=r"max_size \(10 bytes\)"):
        reg.decompress(body, mime)
    assert reg.decompress(body, mime, max_size=11) == b"x" * 11
    reg.max_size = 11
    assert reg.decompress(body, mime) == b"x" * 11


# -- optional libraries and plugins ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("compressor", "module", "extra"), [(BROTLI, "brotli", "brotli"), (ZSTD, "zstandard", "zstd")]
)
def test_a_missing_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, compressor: Compressor, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    for call in (
        lambda: compressor.compress(b"x"),
        lambda: compressor.decompress(b"x", max_size=10),
    ):
        with pytest.raises(ExtraNotInstalled, match=rf"pip install 'taskq\[{extra}\]'"):
            call()


class Faulty:
    """A compressor plugin that breaks the contract by raising bare exceptions."""

    name = "faulty"
    content_type = "application/x-faulty"
    aliases = ()

    def compress(self, data: bytes, /) -> bytes:
        raise RuntimeError("compress broke")

    def decompress(self, data: bytes, /, *, max_size: int) -> bytes:
        raise MemoryError("decompress broke")


def test_a_plugin_raising_bare_exceptions_is_wrapped() -> None:
    reg = CompressorRegistry()
    reg.register(Faulty())
    with pytest.raises(EncodeError, match="faulty compressor failed: RuntimeError"):
        reg.compress(b"x", "faulty")
    with pytest.raises(DecodeError, match="faulty compressor failed: MemoryError"):
        reg.decompress(b"x", "application/x-faulty")
