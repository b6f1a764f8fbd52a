"""Whole task messages in every serializer and compression, through Celery's own code.

taskq builds a message (protocol v2 headers, serialized and compressed body, kombu envelope)
and a real Celery worker runs it; Celery sends a message and taskq reads it back into its
model. Every serializer with every compression Celery knows, both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from taskq_protocol import Envelope, TaskMessage
from taskq_serializers import compress, decompress, registry

pytestmark = pytest.mark.interop

SERIALIZERS = ["json", "pickle", "yaml", "msgpack"]
COMPRESSIONS = [None, "zlib", "bzip2", "lzma", "brotli", "zstd"]
QUEUE = "serializers-interop"


@pytest.fixture(scope="module")
def celery_worker() -> Iterator[Any]:
    celery = pytest.importorskip("celery")
    from celery.contrib.testing.worker import start_worker

    app = celery.Celery("ser", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(
        accept_content=SERIALIZERS, task_default_queue=QUEUE, result_serializer="json",
        broker_transport_options={"polling_interval": 0.01},
    )  # fmt: skip

    @app.task(name="ser.echo")
    def echo(*args: Any, **kwargs: Any) -> list[Any]:
        return [list(args), kwargs]

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):  # pyright: ignore[reportGeneralTypeIssues]
        yield app


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_celery_worker_runs_what_taskq_sends(
    celery_worker: Any, serializer: str, compression: str | None
) -> None:
    msg = TaskMessage.create("ser.echo", (1, "two", [3.5]), {"k": {"nested": True}})
    headers, properties, body = msg.encode()
    content_type, content_encoding, payload = registry.dumps(body, serializer)
    if compression:
        payload, headers["compression"] = compress(payload, compression)
    env = Envelope.create(payload, content_type=content_type, content_encoding=content_encoding,
                          headers=headers, properties=properties, routing_key=QUEUE)  # fmt: skip
    with celery_worker.connection_for_write() as conn:
        conn.default_channel._put(QUEUE, env.to_dict())
    result = celery_worker.AsyncResult(msg.id).get(timeout=10)
    assert result == [[1, "two", [3.5]], {"k": {"nested": True}}]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_taskq_reads_what_celery_sends(serializer: str, compression: str | None) -> None:
    import celery
    from kombu.transport import memory
    from kombu.utils.json import dumps

    app = celery.Celery("send", broker="memory://", set_as_current=False)
    queue = f"from-celery-{serializer}-{compression}"
    with app.connection_for_write() as conn:
        sent = app.send_task("ser.echo", (1, "two"), {"k": [True]}, serializer=serializer,
                             compression=compression, queue=queue, connection=conn)  # fmt: skip
    raw = dumps(memory.Channel.queues[queue].get())
    env = Envelope.decode(raw)
    payload = env.body
    if "compression" in env.headers:
        payload = decompress(payload, env.headers["compression"])
    allowed = registry.accept_content_types(SERIALIZERS)
    body = registry.loads(payload, env.content_type, env.content_encoding, accept=allowed)
    msg = TaskMessage.decode(env.headers, env.properties, body)
    assert msg.id == sent.id
    assert (msg.args, msg.kwargs) == ([1, "two"], {"k": [True]})
