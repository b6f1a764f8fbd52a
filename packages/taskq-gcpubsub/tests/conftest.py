"""The Pub/Sub emulator these tests run against, started once per session.

``pubsub_emulator`` starts Google's official emulator (the JVM binary, not the gcloud wrapper,
which would leave java running) on a free port, points ``PUBSUB_EMULATOR_HOST`` at it for the
whole session (the google-cloud-pubsub clients, taskq's and kombu's, read it) and stops it at
teardown. Without the binary the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, free_port

EMULATOR = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"


class PubsubEmulator(ServerProcess):
    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        argv = [binary, "--host=127.0.0.1", f"--port={self.port}"]
        super().__init__(argv, self._ping, log_path=workdir / "pubsub-emulator.log")

    def _ping(self) -> bool:
        # The emulator answers HTTP on its port once its gRPC server is up.
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running emulator, also exported as ``PUBSUB_EMULATOR_HOST``."""
    binary = os.environ.get("PUBSUB_EMULATOR_BINARY", EMULATOR)
    if not Path(binary).is_file():
        server_missing("the Pub/Sub emulator", f"{binary} is not installed")
    emulator = PubsubEmulator(binary, tmp_path_factory.mktemp("pubsub"))
    emulator.start()
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator.host
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        emulator.stop()


@pytest.fixture
def pubsub_url(pubsub_emulator: str) -> str:
    """A fresh project per test: nothing one test creates is seen by another."""
    return f"gcpubsub://projects/taskq-test-{uuid.uuid4().hex[:12]}"


def pytest_configure(config: pytest.Config) -> None:
    # taskq pulls with return_immediately on purpose (see taskq_gcpubsub.acking); pytest
    # resets warning filters per test, so the library's own filter does not reach here.
    config.addinivalue_line(
        "filterwarnings", "ignore:The return_immediately flag is deprecated:DeprecationWarning"
    )
