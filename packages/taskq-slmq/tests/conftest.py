"""Fixtures for the SLMQ tests: the labelled emulator (tests/slmq_emulator.py), or the real
service when SLMQ_ACCOUNT, SLMQ_USER and SLMQ_API_KEY are set (``real_slmq_url``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from slmq_emulator import SlmqEmulator


@pytest.fixture(scope="session")
def slmq_emulator() -> Iterator[SlmqEmulator]:
    """The SoftLayer Message Queue EMULATOR (not the service), owned by these tests."""
    emulator = SlmqEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def real_slmq_url() -> str:
    """``slmq://`` for the real service from SLMQ_ACCOUNT/SLMQ_USER/SLMQ_API_KEY (and
    SLMQ_HOST, default dal05.mq.softlayer.net); skipped when they are not set. The service was
    retired, so this gate is opt-in even in CI."""
    account, user, key = (os.environ.get(n) for n in ("SLMQ_ACCOUNT", "SLMQ_USER", "SLMQ_API_KEY"))
    if not (account and user and key):
        pytest.skip("set SLMQ_ACCOUNT, SLMQ_USER and SLMQ_API_KEY to run against the service")
    host = os.environ.get("SLMQ_HOST", "dal05.mq.softlayer.net")
    return f"slmq://{user}:{key}@{host}/{account}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slmq_emulator: runs against tests/slmq_emulator.py, an emulator of the SoftLayer "
        "Message Queue REST API, not the service",
    )
