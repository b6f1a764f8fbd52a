"""The shortcuts on the sending path write exactly what the general code writes: task ids from
batched random bytes, reprs of plain arguments, the envelope's bytes, and JSON written from
several threads at once."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from typing import Any

import pytest

from taskq_protocol import Envelope, jsoncodec
from taskq_protocol.ids import BATCH, uuid4_text
from taskq_protocol.message import _repr, safe_repr  # pyright: ignore[reportPrivateUsage]


def test_ids_are_version_4_uuids_in_text_form() -> None:
    ids = [uuid4_text() for _ in range(3 * BATCH)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)


def _ids_in_child(pipe: Any) -> None:
    pipe.send([uuid4_text() for _ in range(5)])


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    uuid4_text()  # the parent holds a batch now
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_ids_in_child, args=(writer,))
    child.start()
    from_child: list[str] = reader.recv()
    child.join(10)
    from_parent = [uuid4_text() for _ in range(BATCH)]
    assert not set(from_child) & set(from_parent)


def test_ids_from_many_threads_are_distinct() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def take(index: int) -> None:
        found[index].extend(uuid4_text() for _ in range(2 * BATCH))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    everything = [text for part in found for text in part]
    assert len(set(everything)) == len(everything) == 8 * BATCH


class _Shown:
    def __repr__(self) -> str:
        return "<shown>"


REPR_CASES: list[object] = [
    (),
    {},
    (1,),
    (1, 2, "three", 4.5, None, True, False),
    ("x" * 250,),
    ("x" * 256,),
    ("x" * 257,),
    ('quote\'s "both"\n',),
    ("é\u2028",),
    (10**39,),
    (10**40,),
    (-(10**39),),
    (float("nan"), float("inf")),
    tuple(range(32)),
    tuple(range(33)),
    {"b": 1, "a": "z", "c": None},
    {str(i): i for i in range(32)},
    {str(i): i for i in range(33)},
    {"k" * 300: 1},
    {1: "not a str key"},
    ([1, 2],),
    {"nested": {"a": 1}},
    (_Shown(),),
    (b"bytes",),
    "a plain string",
]


@pytest.mark.parametrize("value", REPR_CASES, ids=lambda v: type(v).__name__)
def test_safe_repr_of_plain_values_is_reprlibs(value: object) -> None:
    assert safe_repr(value) == _repr.repr(value)[:1024]


@pytest.mark.parametrize("body_encoding", ["base64", "utf-8", None])
def test_envelope_bytes_are_the_json_of_its_dict(body_encoding: str | None) -> None:
    envelope = Envelope.create(
        b'[[1, "\xc3\xa9"], {}, {}]',
        content_type="application/json",
        content_encoding="utf-8",
        headers={"lang": "py", "task": "t\u00e9", "argsrepr": "(1, 'é')", "timelimit": [None, 1.5]},
        properties={"correlation_id": "c", "reply_to": None, "delivery_mode": 2},
        routing_key="celery",
        priority=3,
    )
    if body_encoding is None:
        del envelope.properties["body_encoding"]
    else:
        envelope.properties["body_encoding"] = body_encoding
    assert envelope.encode() == jsoncodec.dumps(envelope.to_dict())
    assert Envelope.decode(envelope.encode()) == envelope


def test_one_value_written_by_threads_at_once_is_not_called_circular() -> None:
    shared = {"args": [list(range(50)) for _ in range(20)], "when": uuid.uuid4()}
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(300):
                jsoncodec.dumps(shared)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def test_a_circular_value_is_a_type_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TypeError):
        jsoncodec.dumps(loop)
