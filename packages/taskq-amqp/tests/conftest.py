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


@pytest.fixture(scope="session")
def results_redis_url() -> str:
    """Where the interop tests keep results: Celery's and taskq's Redis result backend
    (task ids are unique, so a shared database is fine)."""
    return require_server(
        "Redis", "TASKQ_TEST_AMQP_RESULTS_URL", "redis://127.0.0.1:6379/12", default_port=6379
    )
