"""What taskq writes, kombu reads, and the other way round: every format, every compression."""

from __future__ import annotations

from datetime import timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq_serializers import (
    CompressorRegistry,
    ContentDisallowed,
    SerializerRegistry,
)

kombu_serialization: Any = pytest.importorskip("kombu.serialization")
kombu_compression: Any = pytest.importorskip("kombu.compression")
kombu_exceptions: Any = pytest.importorskip("kombu.exceptions")

pytestmark = pytest.mark.interop

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
DATETIMES = st.datetimes(timezones=st.none() | st.just(timezone.utc))


def trees(leaves: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


VALUES: dict[str, st.SearchStrategy[object]] = {
    "json": trees(
        SCALARS
        | DATETIMES
        | st.dates()
        | st.times()
        | st.decimals(allow_nan=False, allow_infinity=False)
        | st.uuids()
        | st.binary()
    ),
    "pickle": trees(SCALARS | DATETIMES | st.uuids() | st.tuples(SCALARS) | st.frozensets(SCALARS)),
    "yaml": trees(SCALARS | DATETIMES | st.dates() | st.binary()),
    "msgpack": trees(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False)
        | st.text().filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
        | st.binary()
    ),
}
FORMATS = list(VALUES)


@pytest.fixture(scope="module")
def reg() -> SerializerRegistry:
    return SerializerRegistry.with_defaults()


def _wire(payload: bytes | str) -> bytes:
    """kombu's json and yaml encoders return str; a transport sends its UTF-8 bytes."""
    return payload.encode("utf-8") if isinstance(payload, str) else payload


# -- serializers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_content_type_and_encoding_match_kombu(reg: SerializerRegistry, name: str) -> None:
    ours = reg.dumps([1, "a"], name)
    theirs = kombu_serialization.dumps([1, "a"], serializer=name)
    assert ours[:2] == theirs[:2]


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=60)
@given(data=st.data())
def test_kombu_reads_what_taskq_writes(reg: SerializerRegistry, name: str, data: Any) -> None:
    value = data.draw(VALUES[name])
    content_type, encoding, body = reg.dumps(value, name)
    assert kombu_serialization.loads(body, content_type, encoding, accept={content_type}) == value


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=60)
@given(data=st.data())
def test_taskq_reads_what_kombu_writes(reg: SerializerRegistry, name: str, data: Any) -> None:
    value = data.draw(VALUES[name])
    content_type, encoding, payload = kombu_serialization.dumps(value, serializer=name)
    assert reg.loads(_wire(payload), content_type, encoding, accept=[name]) == value


@pytest.mark.parametrize("value", [b"\x00\xff", "é", ""])
def test_raw_matches_kombu(reg: SerializerRegistry, value: bytes | str) -> None:
    assert reg.dumps(value, "raw") == kombu_serialization.dumps(value, serializer="raw")


def test_accept_names_normalize_like_kombu(reg: SerializerRegistry) -> None:
    accept = ["json", "pickle", "yaml", "msgpack", "application/data"]
    assert reg.accept_content_types(accept) == kombu_serialization.prepare_accept_content(accept)


@pytest.mark.parametrize("name", ["pickle", "yaml", "msgpack"])
def test_both_refuse_content_outside_accept(reg: SerializerRegistry, name: str) -> None:
    content_type, encoding, body = reg.dumps([1], name)
    with pytest.raises(kombu_exceptions.ContentDisallowed):
        kombu_serialization.loads(body, content_type, encoding, accept={"application/json"})
    with pytest.raises(ContentDisallowed):
        reg.loads(body, content_type, encoding, accept=["json"])


@pytest.mark.parametrize(
    ("content_type", "encoding", "body"),
    [
        (None, "binary", b"\x00\xff"),
        ("", "utf-8", "é".encode()),
        ("application/data", "binary", b"\x01"),
        ("application/text", "utf-8", b"plain"),
    ],
)
def test_untyped_and_trusted_content_decode_like_kombu(
    reg: SerializerRegistry, content_type: str, encoding: str, body: bytes
) -> None:
    expected = kombu_serialization.loads(body, content_type, encoding, accept={"application/json"})
    assert reg.loads(body, content_type, encoding, accept=["json"]) == expected


# -- compression ---------------------------------------------------------------------------------

KOMBU_HAS_ZSTD = "application/zstd" in kombu_compression.encoders()
METHODS = [
    "zlib",
    "bzip2",
    "lzma",
    "brotli",
    pytest.param(
        "zstd",
        marks=pytest.mark.skipif(
            not KOMBU_HAS_ZSTD,
            reason="kombu reads zstd through backports.zstd, which is not installed here",
        ),
    ),
]


@pytest.fixture(scope="module")
def compressors() -> CompressorRegistry:
    return CompressorRegistry.with_defaults()


@pytest.mark.parametrize("method", METHODS)
def test_every_alias_means_the_same_mime_type_to_kombu(
    compressors: CompressorRegistry, method: str
) -> None:
    compressor = compressors.get(method)
    for key in compressor.aliases:
        _, mime = kombu_compression.get_encoder(key)
        assert mime == compressor.content_type


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=30)
@given(data=st.binary(max_size=2048))
def test_kombu_decompresses_what_taskq_compresses(
    compressors: CompressorRegistry, method: str, data: bytes
) -> None:
    body, mime = compressors.compress(data, method)
    assert kombu_compression.decompress(body, mime) == data


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=30)
@given(data=st.binary(max_size=2048))
def test_taskq_decompresses_what_kombu_compresses(
    compressors: CompressorRegistry, method: str, data: bytes
) -> None:
    for alias in compressors.get(method).aliases:
        body, mime = kombu_compression.compress(data, alias)
        assert compressors.decompress(body, mime) == data


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", FORMATS)
def test_a_compressed_body_crosses_both_ways(
    reg: SerializerRegistry, compressors: CompressorRegistry, method: str, name: str
) -> None:
    """The order a message body goes through: serialize, compress; decompress, deserialize."""
    value: object = {"args": [1, "two"], "kwargs": {"x": b"\x00bytes"}}
    content_type, encoding, body = reg.dumps(value, name)
    compressed, mime = compressors.compress(body, method)
    received = kombu_compression.decompress(compressed, mime)
    assert (
        kombu_serialization.loads(received, content_type, encoding, accept={content_type}) == value
    )

    content_type, encoding, payload = kombu_serialization.dumps(value, serializer=name)
    compressed, mime = kombu_compression.compress(_wire(payload), method)
    assert (
        reg.loads(compressors.decompress(compressed, mime), content_type, encoding, accept=[name])
        == value
    )
