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
from slmq_tls import TestCertificates


@pytest.fixture(scope="session")
def slmq_emulator() -> Iterator[SlmqEmulator]:
    """The SoftLayer Message Queue EMULATOR (not the service), owned by these tests."""
    emulator = SlmqEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def slmq_certificates(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    """A throwaway CA and a server certificate for 127.0.0.1 (tests/slmq_tls.py)."""
    return TestCertificates(tmp_path_factory.mktemp("slmq-tls"))


@pytest.fixture(scope="session")
def slmq_https_emulator(slmq_certificates: TestCertificates) -> Iterator[SlmqEmulator]:
    """The SoftLayer Message Queue EMULATOR (not the service) over HTTPS, for kombu's SLMQ
    transport, which always connects with ``https://``. Clients must trust
    ``slmq_certificates.ca``: see ``trust_slmq_https``."""
    emulator = SlmqEmulator(tls=slmq_certificates.server_context()).start()
    yield emulator
    emulator.stop()


#: Environment kombu's SLMQ transport reads before the URL; cleared so the URL decides.
KOMBU_SLMQ_OVERRIDES = (
    "SLMQ_ACCOUNT",
    "SL_USERNAME",
    "SL_API_KEY",
    "SLMQ_HOST",
    "SLMQ_PORT",
    "SLMQ_SECURE",
)


@pytest.fixture
def trust_slmq_https(
    slmq_https_emulator: SlmqEmulator,
    slmq_certificates: TestCertificates,
    monkeypatch: pytest.MonkeyPatch,
) -> SlmqEmulator:
    """The HTTPS emulator, trusted for this test: ``softlayer_messaging`` calls
    ``requests.request``/``requests.post`` with the default ``verify=True``, and requests
    then verifies against ``REQUESTS_CA_BUNDLE`` when it is set. kombu's environment
    overrides of the URL are cleared."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(slmq_certificates.ca))
    for name in KOMBU_SLMQ_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    return slmq_https_emulator


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
