"""JSON with kombu's type markers, checked against kombu's own encoder and decoder."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq_protocol import DecodeError, jsoncodec

SAMPLE: dict[str, Any] = {
    "when": datetime(2026, 11, 24, 4, 19, 48, 354467, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2026, 1, 1, 12, 0),
    "day": date(2026, 11, 24),
    "clock": time(4, 19, 48, 354467),
    "money": Decimal("12.3400"),
    "id": uuid.UUID("b880fa48-0d6f-4f41-9d8e-4a0c0c1a5b7e"),
    "text_bytes": b"hello",
    "raw_bytes": b"\xff\x00\xfe",
    "nested": [{"deep": Decimal("1e-7")}],
}


def test_markers_round_trip() -> None:
    assert jsoncodec.loads(jsoncodec.dumps(SAMPLE)) == SAMPLE


def test_marker_shapes_are_kombus() -> None:
    doc = jsoncodec.loads(jsoncodec.dumps(SAMPLE).replace(b"__type__", b"type"))
    assert doc["id"] == {"type": "uuid", "__value__": {"hex": "b880fa480d6f4f419d8e4a0c0c1a5b7e"}}
    assert doc["raw_bytes"] == {"type": "base64", "__value__": "/wD+"}
    assert doc["text_bytes"] == {"type": "bytes", "__value__": "hello"}
    assert doc["money"] == {"type": "decimal", "__value__": "12.3400"}


def test_output_is_compact_ascii_bytes() -> None:
    out = jsoncodec.dumps({"a": ["é", 1]})
    assert out == b'{"a":["\\u00e9",1]}'


def test_json_method_objects_are_written() -> None:
    class Point:
        def __json__(self) -> list[int]:
            return [1, 2]

    assert jsoncodec.loads(jsoncodec.dumps({"p": Point()})) == {"p": [1, 2]}


def test_unencodable_objects_raise_type_error() -> None:
    with pytest.raises(TypeError, match="object"):
        jsoncodec.dumps({"x": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError):
        jsoncodec.dumps(loop)


def test_dicts_that_only_look_like_markers_survive() -> None:
    doc = {"__type__": "datetime", "__value__": "2026-01-01", "other": 1}
    assert jsoncodec.loads(jsoncodec.dumps(doc)) == doc


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"__type__": "pickle", "__value__": "x"}', "__type__"),
        ('{"__type__": 3, "__value__": "x"}', "__type__"),
        ('{"__type__": "datetime", "__value__": "never"}', "__value__"),
        ('{"__type__": "uuid", "__value__": {"hex": "zz"}}', "__value__"),
        ('{"__type__": "uuid", "__value__": 5}', "__value__"),
        ('{"__type__": "base64", "__value__": "***"}', "__value__"),
        ('{"__type__": "decimal", "__value__": [1]}', "__value__"),
        ("{", "body"),
    ],
)
def test_bad_markers_are_decode_errors(text: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        jsoncodec.loads(text)
    assert info.value.field == field


def test_memoryview_and_bytearray_inputs() -> None:
    data = jsoncodec.dumps({"a": b"\x00\xff"})
    assert jsoncodec.loads(memoryview(data)) == jsoncodec.loads(bytearray(data))


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(),
    st.floats(allow_nan=False), st.datetimes(), st.dates(), st.times(),
    st.decimals(allow_nan=False, allow_infinity=False), st.uuids(), st.binary(),
    # Whole-minute fixed offsets: ISO-8601 keeps the offset, not the zone, for kombu as for us.
    st.datetimes(timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))),
)  # fmt: skip
json_docs = st.recursive(
    json_leaves,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(), c, max_size=4)),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(json_docs)
def test_round_trip_property(doc: Any) -> None:
    assert jsoncodec.loads(jsoncodec.dumps(doc)) == doc


@pytest.mark.interop
@settings(max_examples=200, deadline=None)
@given(json_docs)
def test_kombu_reads_ours_and_we_read_kombus(doc: Any) -> None:
    from kombu.utils.json import dumps, loads

    assert loads(jsoncodec.dumps(doc)) == doc
    assert jsoncodec.loads(dumps(doc)) == doc
