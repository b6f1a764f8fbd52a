"""An app per test on private in-memory brokers, and a helper to read what it published."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from taskq import TaskQ
from taskq_protocol import Envelope, TaskMessage
from taskq_serializers import decompress, registry


@pytest.fixture
def app() -> Iterator[TaskQ]:
    name = uuid.uuid4().hex
    application = TaskQ("tests", broker=f"memory://{name}", backend=f"memory://{name}")
    yield application
    application.close()


Take = Callable[..., tuple[TaskMessage, Envelope]]


@pytest.fixture
def take() -> Take:
    """A function returning the next message an app published, decoded as a worker would."""
    return _take


def _take(app: TaskQ, queue: str = "celery") -> tuple[TaskMessage, Envelope]:
    """The next message on ``queue`` (acked), decoded as a worker decodes it."""
    [delivery] = app.transport.fetch([queue], 1, 1.0)
    app.transport.ack([delivery])
    envelope = delivery.envelope
    body = envelope.body
    if "compression" in envelope.headers:
        body = decompress(body, envelope.headers["compression"])
    accept = registry.accept_content_types(["json", "msgpack", "pickle", "yaml"])
    payload = registry.loads(body, envelope.content_type, envelope.content_encoding, accept=accept)
    return TaskMessage.decode(envelope.headers, envelope.properties, payload), envelope
