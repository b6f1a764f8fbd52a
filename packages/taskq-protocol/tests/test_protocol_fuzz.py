"""Property-based proof that malformed input only ever raises a typed ProtocolError.

Random documents and mutations of real Celery messages go through every decoder. Any other
exception (KeyError, TypeError, AttributeError, RecursionError, ...) fails the test, and
hypothesis' deadline catches a decoder that hangs.
"""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq_protocol import (
    Envelope,
    ProtocolError,
    ResultMeta,
    ResultRef,
    TaskMessage,
    exception_from_dict,
    jsoncodec,
)

FUZZ = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # includes NaN and infinities, which Python's json module reads
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)

VALID_HEADERS: dict[str, Any] = {
    "lang": "py", "task": "proj.add", "id": "a", "shadow": None,
    "eta": "2026-11-24T04:57:09.881793+00:00", "expires": None, "group": "g",
    "group_index": 0, "retries": 0, "timelimit": [30, 20], "root_id": "a", "parent_id": None,
    "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen1@vm", "ignore_result": False,
    "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
}  # fmt: skip
SIG = {"task": "proj.add", "args": [8], "kwargs": {}, "options": {"task_id": "b"},
       "subtask_type": None, "immutable": False}  # fmt: skip
VALID_BODY: list[Any] = [[2, 2], {"k": 1}, {"callbacks": [SIG], "errbacks": None,
                                          "chain": [SIG, SIG], "chord": SIG}]  # fmt: skip
VALID_PROPERTIES = {"correlation_id": "a", "reply_to": "r", "delivery_mode": 2, "priority": 0}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one place replaced by a random value, or deleted."""
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


def _decode_or_protocol_error(*parts: Any) -> None:
    with contextlib.suppress(ProtocolError):
        TaskMessage.decode(*parts)


@FUZZ
@given(json_values, json_values, json_values)
def test_random_documents_never_escape_as_other_errors(h: Any, p: Any, b: Any) -> None:
    _decode_or_protocol_error(h, p, b)


@FUZZ
@given(mutated(VALID_HEADERS), mutated(VALID_BODY))
def test_mutated_celery_messages_never_escape(headers: Any, body: Any) -> None:
    _decode_or_protocol_error(headers, VALID_PROPERTIES, body)
    _decode_or_protocol_error(VALID_HEADERS, VALID_PROPERTIES, body)
    _decode_or_protocol_error(headers, VALID_PROPERTIES, VALID_BODY)


@FUZZ
@given(mutated({"task": "t", "id": "1", "args": [1], "kwargs": {}, "eta": None, "utc": True,
                "callbacks": [SIG], "taskset": "g", "timelimit": [1, None]}))  # fmt: skip
def test_mutated_v1_messages_never_escape(body: Any) -> None:
    _decode_or_protocol_error({}, {}, body)
    _decode_or_protocol_error({"task": "t", "id": "1"}, {}, body)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_in_every_byte_decoder(data: bytes) -> None:
    for decode in (jsoncodec.loads, Envelope.decode):
        with contextlib.suppress(ProtocolError):
            decode(data)


@FUZZ
@given(mutated({"body": "W10=", "content-type": "application/json", "content-encoding": "utf-8",
                "headers": {"x": 1}, "properties": {"body_encoding": "base64", "priority": 0,
                "delivery_info": {"exchange": "", "routing_key": "celery"},
                "delivery_tag": "t"}}))  # fmt: skip
def test_mutated_envelopes_never_escape(doc: Any) -> None:
    try:
        env = Envelope.decode(json.dumps(doc))
        _ = (env.exchange, env.routing_key, env.priority, env.redelivered, env.delivery_tag)
        env.encode()
    except ProtocolError:
        pass


@FUZZ
@given(
    st.one_of(
        json_values,
        mutated({"__type__": "datetime", "__value__": "2026-01-01"}),
        mutated({"a": [{"__type__": "uuid", "__value__": {"hex": "0" * 32}}]}),
    )
)
def test_marker_documents_decode_or_fail_typed(doc: Any) -> None:  # fmt: skip
    with contextlib.suppress(ProtocolError):
        jsoncodec.loads(json.dumps(doc))


@FUZZ
@given(st.one_of(json_values, mutated({"status": "SUCCESS", "result": 1, "traceback": None,
                                        "children": [[["c", None], None]], "date_done": None,
                                        "task_id": "t", "group_id": "g"})))  # fmt: skip
def test_result_meta_never_escapes(doc: Any) -> None:
    try:
        meta = ResultMeta.from_dict(doc)
        meta.child_refs()
        meta.exception()
    except ProtocolError:
        pass


@FUZZ
@given(st.one_of(json_values, mutated([["g", [["p", None], None]], [[["a", None], None]]])))
def test_result_refs_never_escape(doc: Any) -> None:
    with contextlib.suppress(ProtocolError):
        ResultRef.from_tuple(doc)


@FUZZ
@given(st.one_of(
    json_values,
    mutated({"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}),
    st.fixed_dictionaries({"exc_type": st.sampled_from(["print", "open", "eval", "exit", "type",
                                                        "object", "ValueError", "path.join"]),
                           "exc_module": st.sampled_from(["builtins", "os", "sys", "json"]),
                           "exc_message": json_values}),
))  # fmt: skip
def test_stored_exceptions_never_escape_and_never_call_non_exceptions(doc: Any) -> None:
    try:
        exc = exception_from_dict(doc)
    except ProtocolError:
        return
    assert isinstance(exc, Exception)


def test_deeply_nested_json_is_a_decode_error() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000):
        try:
            jsoncodec.loads(text)
        except ProtocolError:
            continue


args_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=10,
)  # fmt: skip


@FUZZ
@given(
    st.text(min_size=1, max_size=30),
    st.lists(args_values, max_size=4),
    st.dictionaries(st.text(max_size=8), args_values, max_size=3),
    st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc))),
    st.one_of(st.none(), st.integers(0, 9)),
    st.tuples(st.one_of(st.none(), st.floats(0, 1e6)), st.one_of(st.none(), st.floats(0, 1e6))),
)
def test_created_messages_survive_the_wire(
    name: str, args: list[Any], kwargs: dict[str, Any], eta: datetime | None,
    priority: int | None, limits: tuple[float | None, float | None],
) -> None:  # fmt: skip
    msg = TaskMessage.create(name, args, kwargs, eta=eta, priority=priority,
                             time_limit=limits[0], soft_time_limit=limits[1],
                             expires=None if eta is None else eta + timedelta(seconds=5))  # fmt: skip
    headers, properties, body = msg.encode()
    wire = [jsoncodec.loads(jsoncodec.dumps(part)) for part in (headers, properties, body)]
    assert TaskMessage.decode(*wire) == msg
