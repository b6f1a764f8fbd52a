"""The ZooKeeper transport passes taskq's transport conformance suite against a real server."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from taskq.contracts import Transport
from taskq_testing.transport import TransportConformance, TransportOpener
from taskq_zookeeper.transport import ZookeeperTransport


class TestZookeeperTransportConformance(TransportConformance):
    # A znode holds at most 1 MiB (jute.maxbuffer) and the body is stored base64-encoded.
    large_body_size: ClassVar[int] = 512 * 1024

    @pytest.fixture
    def open_transport(self, zookeeper_vhost_url: str) -> TransportOpener:
        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options: dict[str, Any] = {}
            if visibility_timeout is not None:
                options["visibility_timeout"] = visibility_timeout
            return ZookeeperTransport(zookeeper_vhost_url, options)

        return open_transport
