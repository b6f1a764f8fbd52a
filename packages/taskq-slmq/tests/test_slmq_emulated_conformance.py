"""The transport conformance suite, through softlayer_messaging, against the SLMQ EMULATOR
(tests/slmq_emulator.py), and against the real service when its credentials are set."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest
from slmq_emulator import SlmqEmulator

from taskq.contracts import Transport
from taskq_slmq.transport import SlmqTransport
from taskq_testing.transport import TransportConformance, TransportOpener


def _opener(url: str, secure: bool) -> TransportOpener:
    def open_transport(*, visibility_timeout: float | None = None) -> Transport:
        options: dict[str, Any] = {"secure": secure, "polling_interval": 0.1}
        if visibility_timeout is not None:
            options["visibility_timeout"] = visibility_timeout
        return SlmqTransport(url, options)

    return open_transport


class _SlmqSuite(TransportConformance):
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = None
    supports_broadcast: ClassVar[bool] = False
    # The service counts delays in whole seconds.
    short_timeout: ClassVar[float] = 1.0


@pytest.mark.slmq_emulator
class TestSlmqTransportOnEmulator(_SlmqSuite):
    """Conformance against the EMULATOR: proves the transport's logic, not the service's."""

    @pytest.fixture
    def open_transport(self, slmq_emulator: SlmqEmulator) -> TransportOpener:
        return _opener(slmq_emulator.url, secure=False)


class TestSlmqTransportOnRealService(_SlmqSuite):
    """Conformance against the real service (SLMQ_* credentials); skipped without them."""

    @pytest.fixture
    def open_transport(self, real_slmq_url: str) -> TransportOpener:
        return _opener(real_slmq_url, secure=True)
