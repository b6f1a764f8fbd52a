"""Fixtures for taskq-amqp's tests: the shared RabbitMQ, or a private one for fault tests, and
the worker apps in ``interop_apps/`` that real worker processes run."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from taskq_amqp.transport import AmqpTransport
from taskq_testing.plugin import require_server
from taskq_testing.servers import free_port
from taskq_testing.worker_processes import InteropApps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rabbit_node import RabbitNode

APPS = Path(__file__).resolve().parent / "interop_apps"


@pytest.fixture
def transport(amqp_url: str) -> Iterator[AmqpTransport]:
    """A connected transport on the shared RabbitMQ, closed after the test."""
    transport = AmqpTransport(amqp_url, {})
    transport.connect()
    yield transport
    transport.close()


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


@pytest.fixture(scope="session")
def interop_apps() -> Callable[..., InteropApps]:
    """``interop_apps(amqp_url, redis_url, exchange, queues)``: the apps in ``interop_apps/``
    on that broker, with results and counts in that Redis; ``queues`` (a topic ``exchange``'s
    quorum queues) are declared by both apps, none when empty (plain durable queues)."""

    def configure(
        amqp_url: str, redis_url: str, exchange: str = "", queues: Sequence[str] = ()
    ) -> InteropApps:
        variables = {
            "INTEROP_AMQP_URL": amqp_url,
            "INTEROP_REDIS_URL": redis_url,
            "INTEROP_EXCHANGE": exchange,
            "INTEROP_QUEUES": json.dumps(list(queues)),
        }
        return InteropApps(APPS, "amqp_taskq_side", "amqp_celery_side", variables)

    return configure


# -- a private rabbitmq-server (fault tests) ----------------------------------------------------

#: RabbitMQ's consumer_timeout in the private server, low so a test can outlast it, and the
#: channel tick that checks it (60 s by default) at one second.
CONSUMER_TIMEOUT_MS = 4000


class RabbitServer(RabbitNode):
    """A RabbitMQ node of its own with a plain-text listener at ``url``."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        super().__init__(
            workdir,
            port,
            f"taskq{port}",
            config=f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n",
            advanced_config="[{rabbit, [{channel_tick_interval, 1000}]}].\n",
            env={"RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port)},
        )
        self.url = f"amqp://guest:guest@127.0.0.1:{port}//"


@pytest.fixture(scope="module")
def private_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbit"))
    with server.serving("rabbitmq-server"):
        yield server
