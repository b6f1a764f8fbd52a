"""Wire compatibility with kombu 5.7's own Pyro transport, against taskq's broker process.

kombu always asks the name server on port 9090 (its ``default_port``), whatever the URL says;
the tests point its Transport class at the private name server's port instead, so they never
need 9090. Queue names are unique per test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu.connection import Connection
from kombu.transport import pyro as kombu_pyro

from taskq.contracts import TransportError
from taskq_pyro.transport import PyroTransport
from taskq_testing.factories import make_envelope, task_id_of

pytestmark = pytest.mark.interop


@pytest.fixture
def kombu_url(pyro_url: str, pyro_name_server: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(kombu_pyro.Transport, "default_port", pyro_name_server)
    return pyro_url


@pytest.fixture
def transport(pyro_url: str) -> Iterator[PyroTransport]:
    transport = PyroTransport(pyro_url, {})
    transport.connect()
    yield transport
    transport.close()


def test_celery_publishes_taskq_fetches(
    kombu_url: str, transport: PyroTransport, unique_name: str
) -> None:
    app = Celery("pyro-interop", broker=kombu_url)
    try:
        result = app.send_task("tasks.add", args=(2, 3), kwargs={"z": 1}, queue=unique_name)
    finally:
        app.close()
    [delivery] = transport.fetch([unique_name], 10, 10.0)
    envelope = delivery.envelope
    assert envelope.headers["task"] == "tasks.add"
    assert envelope.headers["id"] == result.id
    args, kwargs, _embed = json.loads(envelope.body)
    assert (args, kwargs) == ([2, 3], {"z": 1})
    transport.ack([delivery])
    assert transport.queue_length(unique_name) == 0


def test_taskq_publishes_kombu_consumes(
    kombu_url: str, transport: PyroTransport, unique_name: str
) -> None:
    envelope = make_envelope(unique_name, task="tasks.mul", args=[6, 7])
    with Connection(kombu_url) as connection:
        queue = connection.SimpleQueue(unique_name)
        with pytest.raises(queue.Empty):  # an empty get reaches kombu as queue.Empty
            queue.get(block=False)
        transport.publish(unique_name, envelope)
        message = queue.get(timeout=10)
        assert message.headers["task"] == "tasks.mul"
        assert message.headers["id"] == task_id_of(envelope)
        body: Any = message.decode()
        assert body[0] == [6, 7]
        message.ack()
        queue.close()


def test_kombus_own_broker_is_refused_with_a_reason(pyro_name_server: int) -> None:
    """taskq needs the taskq_* methods: against kombu's KombuBroker, connect says so."""
    name = "kombu.own.broker"
    script = (
        "import Pyro4, sys\n"
        "from kombu.transport.pyro import KombuBroker\n"
        "d = Pyro4.Daemon(host='127.0.0.1')\n"
        "uri = d.register(KombuBroker)\n"
        f"Pyro4.locateNS(host='127.0.0.1', port={pyro_name_server}).register({name!r}, uri)\n"
        "print('ready', flush=True)\n"
        "d.requestLoop()\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        transport = PyroTransport(f"pyro://127.0.0.1:{pyro_name_server}/{name}", {})
        with pytest.raises(TransportError, match=r"taskq_pyro\.broker"):
            transport.connect()
    finally:
        process.terminate()
        process.wait(timeout=30)
