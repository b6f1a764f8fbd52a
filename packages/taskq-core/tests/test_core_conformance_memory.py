"""The memory transport and result backend pass taskq-testing's conformance suites."""

from __future__ import annotations

import pytest

from taskq.backends.memory import MemoryBackend
from taskq.contracts import BackendOptions, ResultBackend, Transport
from taskq.transports.memory import MemoryTransport
from taskq_testing.backend import BackendConformance, BackendOpener
from taskq_testing.transport import TransportConformance, TransportOpener


class TestMemoryTransport(TransportConformance):
    @pytest.fixture
    def open_transport(self, unique_name: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options = (
                {} if visibility_timeout is None else {"visibility_timeout": visibility_timeout}
            )
            return MemoryTransport(f"memory://{unique_name}", options)

        return open_transport


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def open_backend(self, unique_name: str) -> BackendOpener:
        def open_backend(options: BackendOptions) -> ResultBackend:
            return MemoryBackend(f"memory://{unique_name}", options)

        return open_backend
