"""The Redis result backend passes taskq's result-backend conformance suite on a real Redis."""

from __future__ import annotations

import pytest

from taskq.contracts import BackendOptions, ResultBackend
from taskq_redis.backend import RedisBackend
from taskq_testing.backend import BackendConformance, BackendOpener


class TestRedisBackendConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, redis_url: str, unique_name: str) -> BackendOpener:
        # Task ids are fresh uuids; the prefix keeps this test's keys apart all the same.
        def open_backend(options: BackendOptions) -> ResultBackend:
            extra = {**options.transport_options, "global_keyprefix": unique_name}
            return RedisBackend(
                redis_url,
                BackendOptions(
                    transport_options=extra,
                    serializer=options.serializer,
                    accept=options.accept,
                    expires=options.expires,
                    extended=options.extended,
                ),
            )

        return open_backend
