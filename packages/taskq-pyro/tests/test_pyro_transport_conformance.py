"""The Pyro transport passes taskq's transport conformance suite against a real broker process
(``python -m taskq_pyro.broker``) found through a real Pyro name server."""

from __future__ import annotations

from typing import Any

import pytest

from taskq.contracts import Transport
from taskq_pyro.transport import PyroTransport
from taskq_testing.transport import TransportConformance, TransportOpener


class TestPyroTransportConformance(TransportConformance):
    @pytest.fixture
    def open_transport(self, pyro_url: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {}
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return PyroTransport(pyro_url, options)

        return open_transport
