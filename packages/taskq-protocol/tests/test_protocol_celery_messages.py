"""Every message a real Celery client sends reads into the model and writes back unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from taskq_protocol import Envelope, TaskMessage, jsoncodec

pytestmark = pytest.mark.interop


def _sent(celery_app: Any, drain: Any, send: Any) -> list[TaskMessage]:
    from kombu.utils.json import dumps

    with celery_app.connection_for_write() as conn:
        send(conn)
    messages: list[TaskMessage] = []
    for _, doc in drain():
        env = Envelope.decode(dumps(doc))
        assert env.to_dict() == doc  # the envelope itself survives unchanged
        msg = TaskMessage.decode(env.headers, env.properties, jsoncodec.loads(env.body))
        headers, _properties, body = msg.encode()
        assert headers == doc["headers"]
        assert body == jsoncodec.loads(env.body)
        messages.append(msg)
    return messages


def test_options_message(celery_app: Any, drain_memory_queues: Any) -> None:
    add = celery_app.tasks["proj.add"]
    [msg] = _sent(celery_app, drain_memory_queues, lambda conn: add.apply_async(
        (2, 2), countdown=10, expires=60, priority=5, link=add.s(8),
        link_error=add.si(0, 0), headers={"x-custom": [1]}, time_limit=30, soft_time_limit=20,
        shadow="shown", connection=conn))  # fmt: skip
    assert msg.headers.timelimit == (30, 20)
    assert msg.headers.shadow == "shown"
    assert msg.embed.errbacks is not None
    assert msg.embed.errbacks[0].immutable


def test_chain_message(celery_app: Any, drain_memory_queues: Any) -> None:
    from celery import chain

    add = celery_app.tasks["proj.add"]
    [msg] = _sent(
        celery_app,
        drain_memory_queues,
        lambda conn: chain(add.s(1, 2), add.s(3), add.s(4)).apply_async(connection=conn),
    )
    assert msg.embed.chain is not None
    assert [s.args for s in msg.embed.chain] == [[4], [3]]  # next step last


def test_chord_messages(celery_app: Any, drain_memory_queues: Any) -> None:
    from celery import chord

    add, tsum = celery_app.tasks["proj.add"], celery_app.tasks["proj.tsum"]
    msgs = _sent(celery_app, drain_memory_queues,
                 lambda conn: chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async(
                     connection=conn))  # fmt: skip
    assert [m.headers.group_index for m in msgs] == [0, 1]
    assert {m.headers.group for m in msgs} == {msgs[0].headers.group}
    body = msgs[0].embed.chord
    assert body is not None
    assert body.task == "proj.tsum"
    assert body.options["group_id"] == msgs[0].headers.group


def test_group_with_nested_chain(celery_app: Any, drain_memory_queues: Any) -> None:
    from celery import chain, group

    add = celery_app.tasks["proj.add"]
    msgs = _sent(celery_app, drain_memory_queues, lambda conn: group(
        chain(add.s(1, 1), add.s(1)), add.s(5, 5)).apply_async(connection=conn))  # fmt: skip
    assert len(msgs) == 2


def test_protocol_1_message(drain_memory_queues: Any) -> None:
    import celery

    app = celery.Celery("v1", broker="memory://", set_as_current=False)
    app.conf.task_protocol = 1
    with app.connection_for_write() as conn:
        app.send_task("proj.add", (7, 8), time_limit=9, connection=conn)
    [(_, doc)] = drain_memory_queues()
    env = Envelope.from_dict(doc)
    msg = TaskMessage.decode(env.headers, env.properties, jsoncodec.loads(env.body))
    assert msg.protocol == 1
    assert (msg.name, msg.args, msg.kwargs) == ("proj.add", [7, 8], {})
    assert msg.headers.timelimit == (9, None)
    assert msg.headers.root_id is None
