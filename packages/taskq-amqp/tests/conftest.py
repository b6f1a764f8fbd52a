"""Fixtures for taskq-amqp's tests: the shared RabbitMQ, or a private one for fault tests."""

from __future__ import annotations

import pytest

from taskq_testing.plugin import require_server


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The running RabbitMQ (``TASKQ_TEST_AMQP_URL``, default localhost:5672, vhost ``/``)."""
    return require_server(
        "RabbitMQ", "TASKQ_TEST_AMQP_URL", "amqp://guest:guest@localhost:5672//", default_port=5672
    )
