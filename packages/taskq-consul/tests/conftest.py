"""Fixtures for the Consul tests: the labelled emulator (tests/consul_emulator.py), or a real
agent when ``CONSUL_HTTP_ADDR`` names one (the ``real_consul`` fixture)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq_testing.plugin import tcp_problem

sys.path.insert(0, str(Path(__file__).parent))

from consul_emulator import ConsulEmulator


@pytest.fixture(scope="session")
def consul_emulator() -> Iterator[ConsulEmulator]:
    """The Consul EMULATOR (not Consul): a stdlib HTTP server owned by these tests."""
    emulator = ConsulEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def real_consul_url() -> str:
    """A real Consul agent's URL from ``CONSUL_HTTP_ADDR``; skips when it is not set.

    No Consul agent can run where these tests were written, so this gate is opt-in even in CI.
    """
    address = os.environ.get("CONSUL_HTTP_ADDR")
    if not address:
        pytest.skip("set CONSUL_HTTP_ADDR (host:port of a Consul agent) to run against real Consul")
    address = address.removeprefix("http://")
    url = f"consul://{address}"
    problem = tcp_problem(url, default_port=8500)
    if problem is not None:
        pytest.fail(f"CONSUL_HTTP_ADDR is set but {problem}")
    return url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "consul_emulator: runs against tests/consul_emulator.py, an emulator of Consul's KV and "
        "session HTTP API, not a real Consul agent",
    )
