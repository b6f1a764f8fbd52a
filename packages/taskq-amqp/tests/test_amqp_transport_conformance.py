"""The AMQP transport passes taskq's transport conformance suite against a real RabbitMQ.

Queue and exchange names are unique per test, so the shared broker is fine.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from taskq.contracts import Transport
from taskq_amqp.transport import AmqpTransport
from taskq_testing.factories import make_envelope
from taskq_testing.transport import TransportConformance, TransportOpener

DELAYED_COUNTS = (
    "Celery's native delayed delivery keeps delayed messages in 28 level queues shared by "
    "every destination, which AMQP cannot count or purge per destination: queue_length "
    "and purge see ready messages only (README, 'Delayed delivery')"
)


class TestAmqpTransportConformance(TransportConformance):
    @pytest.fixture
    def open_transport(self, amqp_url: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {"delayed_delivery_queue_type": "quorum"}
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return AmqpTransport(amqp_url, options)

        return open_transport

    def test_queue_length_counts_waiting_messages(self, transport: Transport, queue: str) -> None:
        pytest.skip(DELAYED_COUNTS)

    def test_purge_deletes_waiting_messages(self, transport: Transport, queue: str) -> None:
        pytest.skip(DELAYED_COUNTS)

    def test_long_eta_waits_in_the_broker(self, broker: Any, queue: str) -> None:
        pytest.skip(DELAYED_COUNTS)

    def test_delayed_message_waits_for_its_eta(self, transport: Transport, queue: str) -> None:
        """The suite's test without its queue_length check (see DELAYED_COUNTS)."""
        envelope = make_envelope(queue)
        sent = copy.deepcopy(envelope)
        eta = time.time() + self.short_timeout * 2
        transport.publish(queue, envelope, eta=eta)
        self.assert_nothing(transport, [queue])
        delivery = self.fetch_one(transport, [queue], within=self.short_timeout * 2 + self.latency)
        assert time.time() >= eta - 0.05, "delivered before its eta"
        assert delivery.envelope == sent
        assert delivery.deliveries == 1
