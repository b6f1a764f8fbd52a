"""The transport conformance suite, through py-consul, against the Consul EMULATOR
(tests/consul_emulator.py), and against a real agent when CONSUL_HTTP_ADDR is set."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest
from consul_emulator import MAX_VALUE_SIZE, ConsulEmulator

from taskq.contracts import Transport
from taskq_consul.transport import ConsulTransport
from taskq_testing.transport import TransportConformance, TransportOpener


def _opener(url: str) -> TransportOpener:
    def open_transport(*, visibility_timeout: float | None = None) -> Transport:
        options: dict[str, Any] = {}
        if visibility_timeout is not None:
            options["visibility_timeout"] = visibility_timeout
        return ConsulTransport(url, options)

    return open_transport


class _ConsulSuite(TransportConformance):
    priority_order: ClassVar[Literal["higher_first", "lower_first"] | None] = None
    # Consul keeps values up to 512 KiB; the envelope base64-encodes the body (4/3).
    large_body_size: ClassVar[int] = MAX_VALUE_SIZE // 2


@pytest.mark.consul_emulator
class TestConsulTransportOnEmulator(_ConsulSuite):
    """Conformance against the EMULATOR: proves the transport's logic, not Consul's behaviour."""

    @pytest.fixture
    def open_transport(self, consul_emulator: ConsulEmulator) -> TransportOpener:
        return _opener(consul_emulator.url)


class TestConsulTransportOnRealConsul(_ConsulSuite):
    """Conformance against a real agent (CONSUL_HTTP_ADDR); skipped when none is given."""

    @pytest.fixture
    def open_transport(self, real_consul_url: str) -> TransportOpener:
        return _opener(real_consul_url)
