"""The AMQP transport passes taskq's transport conformance suite against a real RabbitMQ.

Queue and exchange names are unique per test, so the shared broker is fine.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq.contracts import Transport
from taskq_amqp.transport import AmqpTransport
from taskq_testing.transport import TransportConformance, TransportOpener


class TestAmqpTransportConformance(TransportConformance):
    # Celery's native delayed delivery keeps delayed messages in 28 level queues shared by
    # every destination, which AMQP cannot count or purge per destination: queue_length and
    # purge see ready messages only (README, 'Delayed delivery').
    counts_delayed: ClassVar[bool] = False

    @pytest.fixture
    def open_transport(self, amqp_url: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {"delayed_delivery_queue_type": "quorum"}
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return AmqpTransport(amqp_url, options)

        return open_transport

    def test_queue_length_counts_waiting_messages(self, transport: Transport, queue: str) -> None:
        pytest.skip(
            "once a fetch was acked, RabbitMQ pushes the next message into the consumer's "
            "prefetch buffer, where queue_length (RabbitMQ's ready count) no longer sees it "
            "although no caller holds it (README, 'Fetch, prefetch and acknowledgement')"
        )
