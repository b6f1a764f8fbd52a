"""What only the memory transport has: brokers found by name, shared within the process."""

from __future__ import annotations

import uuid

import pytest

from taskq.contracts import TransportError
from taskq.exceptions import ImproperlyConfigured
from taskq.transports.memory import MemoryTransport, memory_name
from taskq_protocol import Envelope


def envelope(name: str) -> Envelope:
    return Envelope.create(
        b"[[], {}, {}]",
        content_type="application/json",
        content_encoding="utf-8",
        headers={"id": name},
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [("memory://", ""), ("memory", ""), ("MEMORY://", ""), ("memory://tests", "tests")],
)
def test_broker_names(url: str, name: str) -> None:
    assert memory_name(url, TransportError) == name


@pytest.mark.parametrize("url", ["sqlite://", "memoryx://", "memory:", "redis://memory"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(TransportError, match="not a memory:// URL"):
        MemoryTransport(url, {})


def test_transports_of_one_name_share_a_broker_and_other_names_do_not() -> None:
    name = uuid.uuid4().hex
    client = MemoryTransport(f"memory://{name}", {})
    worker = MemoryTransport(f"memory://{name}", {})
    stranger = MemoryTransport(f"memory://{name}-other", {})
    client.publish("q", envelope("m"))
    assert stranger.fetch(["q"], 10, 0) == []
    [delivery] = worker.fetch(["q"], 10, 0)
    assert delivery.envelope.headers["id"] == "m"
    worker.ack([delivery])
    for transport in (client, worker, stranger):
        transport.close()


def test_an_envelope_that_cannot_be_encoded_fails_at_publish() -> None:
    transport = MemoryTransport(f"memory://{uuid.uuid4()}", {})
    bad = envelope("m")
    bad.headers["x-object"] = object()
    with pytest.raises(TypeError, match="not JSON serializable"):
        transport.publish("q", bad)
    assert transport.queue_length("q") == 0


def test_visibility_timeout_is_checked() -> None:
    with pytest.raises(ImproperlyConfigured, match="visibility_timeout"):
        MemoryTransport("memory://", {"visibility_timeout": -5})
