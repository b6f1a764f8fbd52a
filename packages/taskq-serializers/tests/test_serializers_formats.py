"""The built-in formats on their own: round trips, what each refuses to encode, corrupt input."""

from __future__ import annotations

import contextlib
import pickle
import sys
from datetime import timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskq_serializers import DecodeError, EncodeError, ExtraNotInstalled, Serializer
from taskq_serializers.formats.json import JSON_SERIALIZER
from taskq_serializers.formats.msgpack import MSGPACK_SERIALIZER
from taskq_serializers.formats.pickle import PICKLE_PROTOCOL, PICKLE_SERIALIZER
from taskq_serializers.formats.yaml import YAML_SERIALIZER

# -- values each format holds ---------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
DATETIMES = st.datetimes(timezones=st.none() | st.just(timezone.utc))
# What kombu's JSON markers add to plain JSON.
MARKED = (
    DATETIMES
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
    | st.binary()
)


def trees(leaves: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Lists and str-keyed dicts of ``leaves``: the shapes every format keeps as they are."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


JSON_VALUES = trees(SCALARS | MARKED)
PICKLE_VALUES = trees(SCALARS | MARKED | st.tuples(SCALARS, SCALARS) | st.frozensets(st.integers()))
YAML_VALUES = trees(SCALARS | DATETIMES | st.dates() | st.binary())
MSGPACK_VALUES = trees(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text().filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
    | st.binary()
)

ALL = [JSON_SERIALIZER, PICKLE_SERIALIZER, YAML_SERIALIZER, MSGPACK_SERIALIZER]


# -- identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "name", "content_type", "content_encoding"),
    [
        (JSON_SERIALIZER, "json", "application/json", "utf-8"),
        (PICKLE_SERIALIZER, "pickle", "application/x-python-serialize", "binary"),
        (YAML_SERIALIZER, "yaml", "application/x-yaml", "utf-8"),
        (MSGPACK_SERIALIZER, "msgpack", "application/x-msgpack", "binary"),
    ],
)
def test_names_and_content_types_are_kombus(
    serializer: Serializer, name: str, content_type: str, content_encoding: str
) -> None:
    assert isinstance(serializer, Serializer)
    assert (serializer.name, serializer.content_type, serializer.content_encoding) == (
        name,
        content_type,
        content_encoding,
    )


# -- round trips -------------------------------------------------------------------------------


@given(JSON_VALUES)
def test_json_round_trip(value: object) -> None:
    assert JSON_SERIALIZER.loads(JSON_SERIALIZER.dumps(value)) == value


@given(PICKLE_VALUES)
def test_pickle_round_trip(value: object) -> None:
    assert PICKLE_SERIALIZER.loads(PICKLE_SERIALIZER.dumps(value)) == value


@given(YAML_VALUES)
def test_yaml_round_trip(value: object) -> None:
    assert YAML_SERIALIZER.loads(YAML_SERIALIZER.dumps(value)) == value


@given(MSGPACK_VALUES)
def test_msgpack_round_trip(value: object) -> None:
    assert MSGPACK_SERIALIZER.loads(MSGPACK_SERIALIZER.dumps(value)) == value


def test_json_writes_kombus_type_markers() -> None:
    body = JSON_SERIALIZER.dumps({"id": UUID(int=1), "n": Decimal("1.5")})
    assert body == (
        b'{"id":{"__type__":"uuid","__value__":{"hex":"00000000000000000000000000000001"}},'
        b'"n":{"__type__":"decimal","__value__":"1.5"}}'
    )


def test_pickle_writes_kombus_default_protocol() -> None:
    assert PICKLE_PROTOCOL == 4
    assert PICKLE_SERIALIZER.dumps([1])[:2] == b"\x80\x04"


def test_tuples_come_back_as_lists_where_the_format_has_no_tuple() -> None:
    for serializer in (JSON_SERIALIZER, YAML_SERIALIZER, MSGPACK_SERIALIZER):
        assert serializer.loads(serializer.dumps((1, "a"))) == [1, "a"]


# -- what each format cannot hold ----------------------------------------------------------------


class Opaque:
    """An object no format but pickle can write."""


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        (JSON_SERIALIZER, Opaque()),
        (JSON_SERIALIZER, {1, 2}),
        (JSON_SERIALIZER, {(1, 2): "tuple key"}),
        (PICKLE_SERIALIZER, lambda: None),
        (YAML_SERIALIZER, Decimal("1.5")),
        (YAML_SERIALIZER, UUID(int=1)),
        (MSGPACK_SERIALIZER, Opaque()),
        (MSGPACK_SERIALIZER, 2**64),
        (MSGPACK_SERIALIZER, "\ud800"),
    ],
)
def test_unencodable_values_raise_encode_error(serializer: Serializer, value: object) -> None:
    with pytest.raises(EncodeError, match=serializer.name):
        serializer.dumps(value)


@pytest.mark.parametrize("serializer", [JSON_SERIALIZER, YAML_SERIALIZER, MSGPACK_SERIALIZER])
def test_too_deeply_nested_values_raise_encode_error(serializer: Serializer) -> None:
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(EncodeError):
        serializer.dumps(nested)


def test_circular_references_raise_encode_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(EncodeError):
        JSON_SERIALIZER.dumps(loop)
    with pytest.raises(EncodeError):
        MSGPACK_SERIALIZER.dumps(loop)


# -- corrupt input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "data"),
    [
        (JSON_SERIALIZER, b'{"a": '),
        (JSON_SERIALIZER, b"\xff\xfe"),
        (JSON_SERIALIZER, b'{"__type__": "nonsense", "__value__": 1}'),
        (JSON_SERIALIZER, b'{"__type__": "uuid", "__value__": {"hex": "zz"}}'),
        (PICKLE_SERIALIZER, b""),
        (PICKLE_SERIALIZER, b"\x80\x04garbage"),
        (PICKLE_SERIALIZER, pickle.dumps([1, 2, 3])[:-3]),
        (YAML_SERIALIZER, b"a: [1, 2"),
        (YAML_SERIALIZER, b"when: 2020-13-45"),
        (YAML_SERIALIZER, b"\xff\xfe\xfd"),
        (MSGPACK_SERIALIZER, b""),
        (MSGPACK_SERIALIZER, b"\xc1"),
        (MSGPACK_SERIALIZER, b"\x92\x01"),
        (MSGPACK_SERIALIZER, b"\x01\x02"),
        (MSGPACK_SERIALIZER, b"\xa2\xff\xfe"),
        (MSGPACK_SERIALIZER, b"\x81\x01\x02"),  # an int map key, which kombu's unpackb refuses
    ],
)
def test_corrupt_input_raises_decode_error(serializer: Serializer, data: bytes) -> None:
    with pytest.raises(DecodeError, match=serializer.name):
        serializer.loads(data)


def test_json_decode_error_keeps_the_protocol_reason() -> None:
    with pytest.raises(DecodeError, match="unsupported JSON type marker 'nonsense'") as info:
        JSON_SERIALIZER.loads(b'{"__type__": "nonsense", "__value__": 1}')
    assert type(info.value.__cause__).__module__ == "taskq_protocol.errors"


@pytest.mark.parametrize("serializer", [JSON_SERIALIZER, YAML_SERIALIZER, MSGPACK_SERIALIZER])
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(serializer: Serializer, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        serializer.loads(data)


def test_deeply_nested_input_raises_decode_error() -> None:
    depth = 100_000
    with pytest.raises(DecodeError):
        JSON_SERIALIZER.loads(b"[" * depth + b"]" * depth)
    with pytest.raises(DecodeError):
        YAML_SERIALIZER.loads(b"[" * depth + b"]" * depth)


def test_yaml_never_builds_python_objects() -> None:
    """The full loader would call os.system here; the safe one refuses the tag."""
    with pytest.raises(DecodeError, match="python/object/apply"):
        YAML_SERIALIZER.loads(b"!!python/object/apply:os.system ['echo pwned']")


def test_yaml_reads_utf16_with_a_bom() -> None:
    assert YAML_SERIALIZER.loads("a: é".encode("utf-16")) == {"a": "é"}


# -- optional libraries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "module", "extra"),
    [(YAML_SERIALIZER, "yaml", "yaml"), (MSGPACK_SERIALIZER, "msgpack", "msgpack")],
)
def test_a_missing_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, serializer: Serializer, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    for call in (lambda: serializer.dumps(1), lambda: serializer.loads(b"1")):
        with pytest.raises(ExtraNotInstalled, match=rf"pip install 'taskq\[{extra}\]'") as info:
            call()
        assert info.value.extra == extra
