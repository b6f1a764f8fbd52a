"""The SQS transport passes taskq's transport conformance suite against moto (an emulator).

SQS standard queues keep no order and have no priorities; visibility timeouts and delays
are whole seconds, so the timed tests use 1 s; fanout does not exist on SQS (kombu's SQS
transport offers none without SNS), so the broadcast tests are skipped by the suite's flag.

One test is replaced: SQS standard queues deliver *at least* once (AWS documents that a
message may occasionally arrive twice), and moto's ReceiveMessage marks a message received
without a lock, so concurrent receives return duplicates there quite often. The replacement
checks what SQS promises: every message reaches some consumer, none is lost.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar, Literal

import pytest

from taskq.contracts import Transport
from taskq_sqs.transport import SqsTransport
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import task_id_of
from taskq_testing.transport import Broker, TransportConformance, TransportOpener


class TestSqsTransportConformanceOnMotoEmulator(TransportConformance):
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = None
    fifo: ClassVar[bool] = False
    supports_broadcast: ClassVar[bool] = False
    short_timeout: ClassVar[float] = 1.0
    latency: ClassVar[float] = 3.0
    # A body is base64-encoded twice (kombu's envelope, then SQS's), and SQS takes 1 MiB.
    large_body_size: ClassVar[int] = 1 << 19

    @pytest.fixture
    def open_transport(self, sqs_url: str, sqs_options: dict[str, Any]) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options = dict(sqs_options)
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return SqsTransport(sqs_url, options)

        return open_transport

    @pytest.mark.parametrize("instances", ["shared", "one-per-thread"])
    def test_concurrent_consumers_claim_each_message_once(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, broker: Broker, transport: Transport, queue: str, instances: str
    ) -> None:
        """Replaced: at least once (see the module docstring), every message, no loss."""
        total, threads = 200, 4
        consumers = [transport if instances == "shared" else broker.open() for _ in range(threads)]
        ids = self.publish_ids(transport, queue, total)
        claimed: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + self.latency * 10

        def consume(index: int) -> None:
            consumer = consumers[index]
            while time.monotonic() < stop_at:
                with lock:
                    if set(claimed) >= set(ids):
                        return
                batch = consumer.fetch([queue], 5, 0.1)
                with lock:
                    claimed.extend(task_id_of(d) for d in batch)
                if batch:
                    consumer.ack(batch)

        run_in_threads(consume, threads)
        assert sorted(set(claimed)) == sorted(ids)
        assert transport.queue_length(queue) == 0
