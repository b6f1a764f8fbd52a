"""make_envelope / make_meta / make_failure build wire data taskq and Celery both read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from taskq.contracts import Delivery
from taskq_protocol import Envelope, ResultMeta, TaskMessage, jsoncodec, states
from taskq_testing.factories import DEFAULT_TASK, make_envelope, make_failure, make_meta, task_id_of


def test_envelope_is_a_celery_task_message() -> None:
    envelope = make_envelope("videos", task="proj.encode", args=[1, "a"], kwargs={"k": True})
    decoded = Envelope.decode(envelope.encode())
    assert decoded == envelope
    message = TaskMessage.decode(decoded.headers, decoded.properties, jsoncodec.loads(decoded.body))
    assert (message.name, message.args, message.kwargs) == ("proj.encode", [1, "a"], {"k": True})
    assert decoded.routing_key == "videos"
    assert decoded.exchange == ""
    assert decoded.priority == 0
    assert decoded.content_type == "application/json"


def test_envelope_options() -> None:
    envelope = make_envelope(
        task_id="t-1",
        body=b"\x00\xff",
        content_type="application/x-msgpack",
        content_encoding="binary",
        headers={"x-tenant": "acme"},
        priority=7,
    )
    assert task_id_of(envelope) == "t-1"
    assert envelope.body == b"\x00\xff"
    assert (envelope.content_type, envelope.content_encoding) == ("application/x-msgpack", "binary")
    assert envelope.headers["x-tenant"] == "acme"
    assert envelope.headers["task"] == DEFAULT_TASK
    assert envelope.priority == 7
    assert Envelope.decode(envelope.encode()) == envelope


def test_each_envelope_gets_its_own_id_and_tag() -> None:
    first, second = make_envelope(), make_envelope()
    assert task_id_of(first) != task_id_of(second)
    assert first.delivery_tag != second.delivery_tag


def test_task_id_of_a_delivery() -> None:
    envelope = make_envelope(task_id="abc")
    assert task_id_of(Delivery(queue="celery", envelope=envelope, tag="1")) == "abc"


def test_task_id_of_a_message_without_one() -> None:
    envelope = Envelope.create(b"{}", content_type="application/json", content_encoding="utf-8")
    with pytest.raises(ValueError, match="message has no task id header"):
        task_id_of(envelope)


def test_ready_meta_is_done_now() -> None:
    before = datetime.now(timezone.utc)
    meta = make_meta(result=3, name="proj.add")
    assert (meta.status, meta.result, meta.name) == (states.SUCCESS, 3, "proj.add")
    assert meta.date_done is not None
    assert before <= meta.date_done <= datetime.now(timezone.utc)
    assert ResultMeta.from_dict(meta.to_dict(extended=True)) == meta


def test_unready_meta_has_no_date_done() -> None:
    meta = make_meta(states.STARTED, task_id="t")
    assert (meta.task_id, meta.status, meta.date_done) == ("t", states.STARTED, None)


def test_explicit_date_done_is_kept() -> None:
    when = datetime(2020, 1, 2, tzinfo=timezone.utc)
    assert make_meta(date_done=when).date_done == when


def test_failure_holds_the_exception() -> None:
    meta = make_failure(KeyError("missing"), task_id="t", group_id="g")
    assert (meta.task_id, meta.status, meta.group_id) == ("t", states.FAILURE, "g")
    assert meta.ready
    assert meta.traceback
    exc = meta.exception()
    assert isinstance(exc, KeyError)
    assert exc.args == ("missing",)
