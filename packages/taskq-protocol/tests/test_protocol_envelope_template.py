"""An envelope written from a template is byte for byte what ``Envelope.encode`` writes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from taskq_protocol import Envelope, TaskMessage
from taskq_protocol.envelope_template import EnvelopeTemplate

HEADERS = ("id", "root_id", "group_index", "argsrepr", "kwargsrepr")
PROPERTIES = ("correlation_id", "delivery_tag")


def _first(**extra_headers: Any) -> Envelope:
    message = TaskMessage.create("tasks.add", args=(1, 2), kwargs={}, id="first-id", group_index=0)
    headers, properties, _ = message.encode()
    headers.update(extra_headers)
    return Envelope.create(
        b'[[1, 2], {}, {"callbacks": null}]',
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties=properties,
        routing_key="celery",
    )


def _member(first: Envelope, body: bytes, **values: Any) -> Envelope:
    headers, properties = dict(first.headers), dict(first.properties)
    for key, value in values.items():
        (headers if key in HEADERS else properties)[key] = value
    return Envelope(body, first.content_type, first.content_encoding, headers, properties)


# Values a member may hold: escapes, non-ASCII text, a quote, a marker-like string, numbers,
# None, and a kind only jsoncodec writes (a datetime, with its type marker).
VALUES: list[dict[str, Any]] = [
    {"id": "a", "root_id": "a", "group_index": 0, "correlation_id": "a", "delivery_tag": "t"},
    {"id": 'q"uote\\', "group_index": None, "argsrepr": "(1, 'é', '\\n')", "kwargsrepr": "{}"},
    {"id": "\u2603 snow", "group_index": 12345678901234567890, "delivery_tag": "\x00\x1f"},
    {"argsrepr": "first-id", "kwargsrepr": '"first-id"', "root_id": "}{,:"},
    {"group_index": True, "correlation_id": datetime.datetime(2026, 11, 25, 3, 0)},
    {"group_index": 1.5, "root_id": "x" * 5000},
]


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("body", [b"", b"[[], {}, {}]", bytes(range(256)) * 3])
def test_written_from_the_template_as_encode_writes_it(values: dict[str, Any], body: bytes) -> None:
    first = _first()
    template = EnvelopeTemplate(first, HEADERS, PROPERTIES)
    member = _member(first, body, **values)
    assert template.write(member) == member.encode()


def test_the_first_itself_and_many_members() -> None:
    first = _first(stamps={"a": [1, "b"]}, compression="application/x-gzip")
    template = EnvelopeTemplate(first, HEADERS, PROPERTIES)
    assert template.write(first) == first.encode()
    for index in range(50):
        member = _member(
            first, b"body %d" % index, id=f"id-{index}", group_index=index, delivery_tag=str(index)
        )
        assert template.write(member) == member.encode()


def test_encode_writes_from_the_envelopes_template() -> None:
    first = _first()
    member = _member(first, b"[]", id="other")
    template = EnvelopeTemplate(first, HEADERS, PROPERTIES)
    member.template = template
    assert member.encode() == template.write(member)
    member.headers["id"] = "changed"  # a named value: written as it is when encoded
    assert member.encode() == _member(first, b"[]", id="changed").encode()
    assert Envelope.decode(member.encode()) == member  # ``template`` is not compared
    assert "template" not in repr(member)


def test_an_envelope_of_another_shape_is_not_written_from_it() -> None:
    first = _first()
    template = EnvelopeTemplate(first, HEADERS, PROPERTIES)
    more = _member(first, b"[]")
    more.headers["extra"] = 1
    assert template.write(more) is None
    more.template = template  # encoded in full instead
    expected = _member(first, b"[]")
    expected.headers["extra"] = 1
    assert more.encode() == expected.encode()
    assert b'"extra":1' in more.encode()
    other = _member(first, b"[]")
    other.content_type = "application/x-msgpack"
    assert template.write(other) is None


def test_a_first_it_cannot_template_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks nowhere"):
        EnvelopeTemplate(_first(), ("nowhere",), ())
    with pytest.raises(ValueError, match="lacks missing"):
        EnvelopeTemplate(_first(), (), ("missing",))
    plain = _first()
    plain.properties["body_encoding"] = "utf-8"
    with pytest.raises(ValueError, match="base64"):
        EnvelopeTemplate(plain, HEADERS, PROPERTIES)
