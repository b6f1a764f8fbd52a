"""Result meta, result references and stored exceptions, against Celery's own code."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import pytest

from taskq_protocol import (
    MalformedMessage,
    ResultMeta,
    ResultRef,
    UnsafeException,
    exception_from_dict,
    exception_to_dict,
    states,
)
from taskq_protocol.exceptions import stand_in_exception_class

# [live] celery 5.7.0, result_extended=True, a SUCCESS on Redis.
CELERY_META: dict[str, Any] = {
    "status": "SUCCESS", "result": 4, "traceback": None, "children": [],
    "date_done": "2026-11-24T04:19:49.134962+00:00", "name": "proj.add", "args": [2, 2],
    "kwargs": {}, "worker": "celery@vm", "retries": 0, "queue": "celery",
    "task_id": "b880fa48-0000-0000-0000-000000000000",
}  # fmt: skip


class AppError(Exception):
    class Nested(Exception):
        pass


class NeedsTwo(Exception):
    def __init__(self, a: object, b: object) -> None:
        super().__init__(a, b)


def test_meta_round_trip_keeps_celerys_shape() -> None:
    meta = ResultMeta.from_dict(CELERY_META)
    assert meta.ready
    assert meta.date_done == datetime(2026, 11, 24, 4, 19, 49, 134962, tzinfo=timezone.utc)
    assert meta.to_dict(extended=True) == CELERY_META
    plain = meta.to_dict()
    assert set(plain) == {"status", "result", "traceback", "children", "date_done", "task_id"}


def test_meta_keeps_unknown_fields_and_group_ids() -> None:
    raw = {"status": "STARTED", "result": {"pid": 1}, "task_id": "t", "group_id": "g",
           "parent_id": "p", "stamped_headers": ["a"], "a": 1}  # fmt: skip
    meta = ResultMeta.from_dict(raw)
    assert (meta.group_id, meta.parent_id) == ("g", "p")
    assert meta.extra == {"stamped_headers": ["a"], "a": 1}
    assert not meta.ready
    assert ResultMeta.from_dict(meta.to_dict()) == meta


def test_meta_without_task_id_takes_the_given_one() -> None:
    assert ResultMeta.from_dict({"status": "PENDING"}, task_id="x").task_id == "x"
    with pytest.raises(MalformedMessage, match=r"meta\.task_id"):
        ResultMeta.from_dict({"status": "PENDING"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "meta"),
        ({"task_id": "t"}, "meta.status"),
        ({"status": "SUCCESS", "task_id": "t", "date_done": "yesterday"}, "meta.date_done"),
        ({"status": "SUCCESS", "task_id": "t", "children": {}}, "meta.children"),
        ({"status": "SUCCESS", "task_id": "t", "traceback": 3}, "meta.traceback"),
        ({"status": "SUCCESS", "task_id": "t", "retries": "1"}, "meta.retries"),
    ],
)
def test_malformed_meta_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        ResultMeta.from_dict(raw)
    assert info.value.field == field


def test_failure_meta_rebuilds_the_exception() -> None:
    meta = ResultMeta.failure("t", ValueError("bad", 42), traceback="Traceback ...")
    assert meta.result == {"exc_type": "ValueError", "exc_message": ["bad", 42],
                           "exc_module": "builtins"}  # fmt: skip
    exc = meta.exception()
    assert isinstance(exc, ValueError)
    assert exc.args == ("bad", 42)
    assert ResultMeta("t", states.SUCCESS, 1).exception() is None


def test_result_refs_round_trip() -> None:
    child = ResultRef("c", parent=ResultRef("p"))
    group = ResultRef("g", children=(child, ResultRef("d")))
    assert child.as_tuple() == [["c", [["p", None], None]], None]
    assert ResultRef.from_tuple(group.as_tuple()) == group
    assert group.is_group
    assert not child.is_group
    assert ResultRef.from_tuple(["bare-id", None]) == ResultRef("bare-id")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("x", "ref"),
        ([["a", None]], "ref"),
        ([["a"], None], "ref[0]"),
        ([[5, None], None], "ref[0][0]"),
        ([["a", None], "kids"], "ref[1]"),
        ([["a", None], [["b"]]], "ref[1][0]"),
    ],
)
def test_bad_result_refs_name_the_field(value: object, field: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        ResultRef.from_tuple(value, "ref")
    assert info.value.field == field


def test_exceptions_resolve_nested_and_module_classes() -> None:
    exc = exception_from_dict(exception_to_dict(AppError.Nested("x")))
    assert type(exc) is AppError.Nested
    assert exception_to_dict(AppError.Nested("x"))["exc_type"] == "AppError.Nested"


def test_unencodable_exception_args_become_reprs() -> None:
    stored = exception_to_dict(ValueError(object, 1))
    assert stored["exc_message"][1] == 1
    assert "class 'object'" in stored["exc_message"][0]


def test_unknown_exception_gets_a_stable_stand_in() -> None:
    raw = {"exc_type": "Gone", "exc_message": ["why"], "exc_module": "no.such.module"}
    first, second = exception_from_dict(raw), exception_from_dict(raw)
    assert type(first) is type(second) is stand_in_exception_class("no.such.module", "Gone")
    assert type(first).__name__ == "Gone"
    assert type(first).__module__ == "no.such.module"
    assert first.args == ("why",)


def test_modules_are_never_imported_by_decoding() -> None:
    raw = {"exc_type": "Thing", "exc_message": [], "exc_module": "antigravity"}
    exception_from_dict(raw)
    import sys

    assert "antigravity" not in sys.modules


@pytest.mark.parametrize(
    "raw",
    [
        {"exc_type": "system", "exc_message": ["echo pwned"], "exc_module": "os"},
        {"exc_type": "path.join", "exc_message": [], "exc_module": "os"},
        {"exc_type": "eval", "exc_message": ["1"], "exc_module": "builtins"},
        {"exc_type": "str", "exc_message": ["1"], "exc_module": "builtins"},
    ],
)
def test_non_exception_targets_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(UnsafeException):
        exception_from_dict(raw)


def test_dunder_walks_are_refused_quietly() -> None:
    raw = {"exc_type": "__class__.__base__", "exc_message": [], "exc_module": "os"}
    assert type(exception_from_dict(raw)).__module__ == "os"  # a stand-in, nothing reached


def test_base_exceptions_that_would_stop_the_reader_are_replaced() -> None:
    exc = exception_from_dict({"exc_type": "SystemExit", "exc_message": [1],
                               "exc_module": "builtins"})  # fmt: skip
    assert not isinstance(exc, SystemExit)
    assert isinstance(exc, Exception)
    assert type(exc).__name__ == "SystemExit"


def test_constructor_mismatch_keeps_the_message() -> None:
    exc = exception_from_dict({"exc_type": "NeedsTwo", "exc_message": ["only one"],
                               "exc_module": __name__})  # fmt: skip
    assert exc.args == ("only one",)
    assert type(exc).__name__ == "NeedsTwo"


def test_scalar_exc_message_is_one_argument() -> None:
    exc = exception_from_dict({"exc_type": "KeyError", "exc_message": "k",
                               "exc_module": "builtins"})  # fmt: skip
    assert isinstance(exc, KeyError)
    assert exc.args == ("k",)


@pytest.mark.interop
def test_celery_reads_taskqs_stored_exception_and_reverse(celery_app: Any) -> None:
    backend = celery_app.backend
    from kombu.utils.json import dumps, loads

    stored = exception_to_dict(ValueError("bad", 42))
    assert stored == loads(dumps(backend.prepare_exception(ValueError("bad", 42))))
    again = backend.exception_to_python(stored)
    assert type(again) is ValueError
    assert again.args == ("bad", 42)
    ours = exception_from_dict(backend.prepare_exception(KeyError("k")))
    assert type(ours) is KeyError
    assert ours.args == ("k",)


@pytest.mark.interop
def test_celery_result_tuples_read_both_ways(celery_app: Any) -> None:
    from celery.result import AsyncResult, GroupResult, result_from_tuple

    parent = AsyncResult("p", app=celery_app)
    group = GroupResult("g", [AsyncResult("a", parent=parent, app=celery_app),
                              AsyncResult("b", app=celery_app)], app=celery_app)  # fmt: skip
    from kombu.utils.json import dumps, loads

    wire = loads(dumps(group.as_tuple()))
    ref = ResultRef.from_tuple(wire)
    assert [c.id for c in ref.children or ()] == ["a", "b"]
    back = result_from_tuple(ref.as_tuple(), app=celery_app)
    assert back.id == "g"
    assert [r.id for r in back.results] == ["a", "b"]
    assert back.results[0].parent.id == "p"


@pytest.mark.interop
def test_a_celery_worker_runs_a_taskq_message_and_taskq_reads_its_result(
    celery_worker_app: Any,
) -> None:
    from taskq_protocol import Envelope, TaskMessage, jsoncodec

    failing = TaskMessage.create("interop.fail", ("boom",))
    adding = TaskMessage.create("interop.add", (2, 3), reply_to=f"gen{os.getpid()}")
    with celery_worker_app.connection_for_write() as conn:
        for msg in (adding, failing):
            headers, properties, body = msg.encode()
            env = Envelope.create(jsoncodec.dumps(body), content_type="application/json",
                                  content_encoding="utf-8", headers=headers,
                                  properties=properties, routing_key="interop")  # fmt: skip
            conn.default_channel._put("interop", env.to_dict())
    assert celery_worker_app.AsyncResult(adding.id).get(timeout=10) == 5
    meta = ResultMeta.from_dict(celery_worker_app.backend.get_task_meta(adding.id))
    assert (meta.status, meta.result, meta.task_id) == ("SUCCESS", 5, adding.id)
    with pytest.raises(LookupError):
        celery_worker_app.AsyncResult(failing.id).get(timeout=10)
    raw = celery_worker_app.backend.get(celery_worker_app.backend.get_key_for_task(failing.id))
    from kombu.utils.json import loads

    failed = ResultMeta.from_dict(loads(raw))
    assert failed.status == states.FAILURE
    exc = failed.exception()
    assert isinstance(exc, LookupError)
    assert exc.args == ("boom",)
    assert failed.traceback is not None
    assert "LookupError" in failed.traceback
