"""The transport conformance suite against the official Pub/Sub emulator.

Pub/Sub has no priorities and does not promise order, and it cannot count a backlog: the three
tests that count a delayed message after a fetch has hidden it until its eta are replaced
below by versions that check everything else they check (see the README, "Counting").
"""

from __future__ import annotations

import copy
import time

import pytest

from taskq.contracts import Transport
from taskq_gcpubsub.transport import GcpubsubTransport
from taskq_testing.factories import make_envelope
from taskq_testing.transport import Broker, TransportConformance, TransportOpener

HIDDEN_DELAYED = (
    "Pub/Sub cannot count messages: a delayed message a fetch has looked at stays hidden "
    "until its eta, and queue_length/purge cannot see it (README, Counting)"
)


class TestGcpubsubTransport(TransportConformance):
    priority_order = None
    fifo = False
    # Ack deadlines are whole seconds; 1 s is the shortest that is not "at once".
    short_timeout = 1.0
    latency = 3.0

    @pytest.fixture
    def open_transport(self, pubsub_url: str) -> TransportOpener:
        def opener(*, visibility_timeout: float | None = None) -> Transport:
            options = (
                {} if visibility_timeout is None else {"visibility_timeout": visibility_timeout}
            )
            return GcpubsubTransport(pubsub_url, {"polling_interval": 0.05, **options})

        return opener

    def test_delayed_message_waits_for_its_eta(self, transport: Transport, queue: str) -> None:
        envelope = make_envelope(queue)
        sent = copy.deepcopy(envelope)
        eta = time.time() + self.short_timeout * 2
        transport.publish(queue, envelope, eta=eta)
        assert transport.queue_length(queue) == 1, "counted before a fetch hid it"
        self.assert_nothing(transport, [queue])
        delivery = self.fetch_one(transport, [queue], within=self.short_timeout * 2 + self.latency)
        assert time.time() >= eta - 0.05, "delivered before its eta"
        assert delivery.envelope == sent
        assert delivery.deliveries == 1

    def test_queue_length_counts_waiting_messages(self, transport: Transport, queue: str) -> None:
        assert transport.queue_length(queue) == 0
        self.publish_ids(transport, queue, 3)
        transport.publish(queue, make_envelope(queue), eta=time.time() + 3600)
        assert transport.queue_length(queue) == 4
        delivery = self.fetch_one(transport, [queue])
        # The fetch hid the delayed message until its eta: only the ready ones count now.
        assert transport.queue_length(queue) == 2, HIDDEN_DELAYED
        transport.ack([delivery])
        assert transport.queue_length(queue) == 2

    def test_long_eta_waits_in_the_broker(self, broker: Broker, queue: str) -> None:
        client = broker.open()
        envelope = make_envelope(queue)
        client.publish(queue, envelope, eta=time.time() + 3600)
        broker.close(client)
        worker = broker.open()
        assert worker.queue_length(queue) == 1
        self.assert_nothing(worker, [queue])
        assert worker.queue_length(queue) == 0, HIDDEN_DELAYED
        worker.purge(queue)  # drops it (test_gcpubsub_delayed.py shows it), uncounted
        assert worker.queue_length(queue) == 0
