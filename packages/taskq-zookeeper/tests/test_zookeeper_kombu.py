"""Wire compatibility with kombu 5.7's own ZooKeeper transport, on the same real server.

kombu and Celery publish, taskq consumes; taskq publishes, kombu consumes. Each test has a
vhost of its own, so its queues are its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kazoo.client import KazooClient
from kombu.connection import Connection
from kombu.transport import zookeeper as kombu_zookeeper

from taskq.contracts import QueueSpec
from taskq_testing.factories import make_envelope, task_id_of
from taskq_zookeeper.transport import ZookeeperTransport

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _stop_kombus_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kombu's ZooKeeper channel starts a KazooClient and never stops it: left running, it
    reconnects in the background after the test server has gone, and logs to closed streams
    at exit. Every client kombu makes here is stopped after the test."""
    started: list[KazooClient] = []

    class RecordedClient(KazooClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(kombu_zookeeper, "KazooClient", RecordedClient)
    yield
    for client in started:
        client.stop()
        client.close()


@pytest.fixture
def transport(zookeeper_vhost_url: str) -> Iterator[ZookeeperTransport]:
    transport = ZookeeperTransport(zookeeper_vhost_url, {})
    transport.connect()
    yield transport
    transport.close()


@pytest.fixture
def kombu(zookeeper_vhost_url: str) -> Iterator[Connection]:
    connection = Connection(zookeeper_vhost_url)
    yield connection
    connection.release()


@pytest.fixture
def celery_app(zookeeper_vhost_url: str) -> Iterator[Celery]:
    app = Celery("zk-interop", broker=zookeeper_vhost_url)
    yield app
    app.close()


def test_celery_publishes_taskq_fetches(celery_app: Celery, transport: ZookeeperTransport) -> None:
    result = celery_app.send_task("tasks.add", args=(2, 3), kwargs={"z": 1}, queue="interop")
    [delivery] = transport.fetch(["interop"], 10, 10.0)
    envelope = delivery.envelope
    assert envelope.headers["task"] == "tasks.add"
    assert envelope.headers["id"] == result.id
    assert envelope.content_type == "application/json"
    args, kwargs, _embed = json.loads(envelope.body)
    assert (args, kwargs) == ([2, 3], {"z": 1})
    assert envelope.routing_key == "interop"
    transport.ack([delivery])
    assert transport.queue_length("interop") == 0


def test_kombu_priorities_are_served_highest_first(
    kombu: Connection, transport: ZookeeperTransport
) -> None:
    with kombu.Producer() as producer:
        for priority in (0, 9, 5):
            producer.publish(
                {"p": priority},
                routing_key="prio",
                priority=priority,
                declare=[kombu.SimpleQueue("prio").queue],
            )
    got = [json.loads(d.envelope.body)["p"] for d in transport.fetch(["prio"], 3, 10.0)]
    assert got == [9, 5, 0]


def test_taskq_publishes_kombu_consumes(kombu: Connection, transport: ZookeeperTransport) -> None:
    transport.declare_queue(QueueSpec("to-kombu"))
    envelope = make_envelope("to-kombu", task="tasks.mul", args=[6, 7])
    transport.publish("to-kombu", envelope)
    queue = kombu.SimpleQueue("to-kombu")
    message = queue.get(timeout=10)
    assert message.headers["task"] == "tasks.mul"
    assert message.headers["id"] == task_id_of(envelope)
    body: Any = message.decode()
    assert body[0] == [6, 7]
    message.ack()
    queue.close()


def test_kombu_reads_a_message_taskq_gave_back(
    kombu: Connection, transport: ZookeeperTransport
) -> None:
    """A taskq claim leaves kombu's format intact: kombu reads a requeued message."""
    envelope = make_envelope("given-back", args=[1])
    transport.publish("given-back", envelope)
    [delivery] = transport.fetch(["given-back"], 1, 10.0)
    transport.reject(delivery, requeue=True)
    queue = kombu.SimpleQueue("given-back")
    message = queue.get(timeout=10)
    assert message.headers["id"] == task_id_of(envelope)
    message.ack()
    queue.close()
    assert transport.queue_length("given-back") == 0
