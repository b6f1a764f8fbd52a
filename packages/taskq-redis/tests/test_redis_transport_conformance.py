"""The Redis transport passes taskq's transport conformance suite against a real Redis.

Each test gets its own unacked hash, index and restore lock (kombu's ``unacked_key`` options),
so the suite's half-second visibility timeouts never restore deliveries that other tests or
other programs on the shared server hold; queue names are unique per test already.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest
import redis

from taskq.contracts import Transport
from taskq_redis.transport import RedisTransport
from taskq_testing.transport import TransportConformance, TransportOpener


class TestRedisTransportConformance(TransportConformance):
    # kombu's Redis layout serves priority 0 first (its step lists are BRPOPed in order).
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = "lower_first"

    @pytest.fixture
    def unacked_keys(self, redis_url: str, unique_name: str) -> Iterator[str]:
        """This test's unacked keys' common prefix; deleted after its transports closed."""
        yield unique_name
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{unique_name}.*", count=10_000))
        if keys:
            client.delete(*keys)
        client.close()

    @pytest.fixture
    def open_transport(self, redis_url: str, unacked_keys: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {
                "unacked_key": f"{unacked_keys}.unacked",
                "unacked_index_key": f"{unacked_keys}.unacked_index",
                "unacked_mutex_key": f"{unacked_keys}.unacked_mutex",
            }
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return RedisTransport(redis_url, options)

        return open_transport
