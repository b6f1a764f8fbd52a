"""The Redis transport passes taskq's transport conformance suite against a real Redis."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest

from taskq.contracts import Transport
from taskq_redis.transport import RedisTransport
from taskq_testing.transport import TransportConformance, TransportOpener


class TestRedisTransportConformance(TransportConformance):
    # kombu's Redis layout serves priority 0 first (its step lists are BRPOPed in order).
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = "lower_first"

    @pytest.fixture
    def open_transport(self, redis_url: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {}
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return RedisTransport(redis_url, options)

        return open_transport
