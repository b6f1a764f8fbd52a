"""ResultCodec: how the built-in backends (and later every backend) encode result records."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from taskq.backends.codec import ResultCodec
from taskq.contracts import BackendOptions
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import MalformedMessage, ResultMeta, states
from taskq_serializers import ContentDisallowed, DecodeError

DONE = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def test_json_writes_celerys_meta_document() -> None:
    meta = ResultMeta("t1", states.SUCCESS, result=[1, "a"], date_done=DONE, name="proj.add")
    data = ResultCodec().encode_meta(meta)
    assert json.loads(data) == {
        "status": "SUCCESS",
        "result": [1, "a"],
        "traceback": None,
        "children": [],
        "date_done": DONE.isoformat(),
        "task_id": "t1",
    }
    extended = json.loads(ResultCodec(extended=True).encode_meta(meta))
    assert extended["name"] == "proj.add"
    assert ResultCodec().decode_meta(data, "t1") == ResultMeta(
        "t1", states.SUCCESS, result=[1, "a"], date_done=DONE
    )


def test_a_record_without_task_id_takes_the_one_asked_for() -> None:
    data = json.dumps({"status": "FAILURE", "result": None}).encode()
    assert ResultCodec().decode_meta(data, "asked").task_id == "asked"


def test_other_serializers_when_accepted() -> None:
    codec = ResultCodec("pickle", {"pickle", "application/json"})
    meta = ResultMeta("t", states.SUCCESS, result=(1, {2}), date_done=DONE)
    assert codec.content_type == "application/x-python-serialize"
    assert codec.decode_meta(codec.encode_meta(meta), "t").result == (1, {2})


def test_from_options() -> None:
    codec = ResultCodec.from_options(
        BackendOptions(serializer="json", accept=frozenset({"application/json"}), extended=True)
    )
    assert (codec.serializer, codec.content_type, codec.extended) == (
        "json",
        "application/json",
        True,
    )


def test_a_serializer_its_own_accept_refuses_fails_at_start() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"result_accept_content: .*'pickle'"):
        ResultCodec("pickle", frozenset({"application/json"}))


def test_an_unknown_serializer_fails_at_start() -> None:
    with pytest.raises(ImproperlyConfigured, match="result_serializer"):
        ResultCodec("jsno")


def test_bytes_of_another_format_do_not_decode() -> None:
    pickled = ResultCodec("pickle", {"pickle"}).encode({"status": "SUCCESS"})
    with pytest.raises(DecodeError):
        ResultCodec().decode(pickled)


def test_what_accept_allows_is_checked_on_every_read() -> None:
    from taskq_serializers import SerializerRegistry

    registry = SerializerRegistry.with_defaults()
    codec = ResultCodec(registry=registry)
    data = codec.encode({"status": "SUCCESS"})
    registry.disable("json")
    with pytest.raises(ContentDisallowed):
        codec.decode(data)


def test_group_records() -> None:
    codec = ResultCodec()
    data = codec.encode_group([["g", None], [[["a", None], None]]])
    assert json.loads(data) == {"result": [["g", None], [[["a", None], None]]]}
    assert codec.decode_group(data) == [["g", None], [[["a", None], None]]]
    with pytest.raises(MalformedMessage, match=r"group\.result"):
        codec.decode_group(b'{"result": 3}')
    with pytest.raises(MalformedMessage, match=r"group\.result"):
        codec.decode_group(b"[1]")


@pytest.mark.interop
def test_reads_what_a_celery_backend_writes() -> None:
    from celery import Celery
    from celery.backends.base import KeyValueStoreBackend

    app = Celery(set_as_current=False, backend="cache+memory://")
    backend = app.backend
    assert isinstance(backend, KeyValueStoreBackend)
    celery_meta = backend._get_result_meta(  # the dict Celery's backends encode and store
        result={"x": 1}, state=states.SUCCESS, traceback=None, request=None
    )
    celery_meta["task_id"] = "t"
    data = backend.encode(celery_meta)
    got = ResultCodec().decode_meta(data if isinstance(data, bytes) else data.encode(), "t")
    assert (got.task_id, got.status, got.result) == ("t", states.SUCCESS, {"x": 1})
    assert got.date_done is not None
