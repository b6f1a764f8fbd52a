"""Fixtures for taskq-amqp's tests: the shared RabbitMQ, or a private one for fault tests, and
the worker apps in ``interop_apps/`` that real worker processes run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import amqp  # pyright: ignore[reportMissingTypeStubs]
import pytest

from taskq_amqp.transport import AmqpTransport
from taskq_testing.plugin import require_server, server_missing
from taskq_testing.servers import ServerProcess, ServerStartError, free_port
from taskq_testing.worker_processes import InteropApps

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

#: Debian's wrapper su's to the rabbitmq user; the script under it runs as the caller.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
#: RabbitMQ's consumer_timeout in the private server, low so a test can outlast it, and the
#: channel tick that checks it (60 s by default) at one second.
CONSUMER_TIMEOUT_MS = 4000


class RabbitServer(ServerProcess):
    """A RabbitMQ node of its own (ports, epmd, data directory), restartable with its data."""

    def __init__(self, workdir: Path) -> None:
        self.port, dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        (workdir / "plugins").write_text("[].\n")
        (workdir / "rabbitmq.conf").write_text(f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n")
        (workdir / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
        env = {
            "HOME": str(workdir),
            "RABBITMQ_NODENAME": f"taskq{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(workdir / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), RABBITMQ_SERVER]
        super().__init__(argv, self._ping, log_path=workdir / "server.log", start_timeout=60.0)

    def _ping(self) -> bool:
        connection = amqp.Connection(
            host=f"127.0.0.1:{self.port}", userid="guest", password="guest", connect_timeout=1
        )
        connection.connect()
        connection.close()
        return True

    def stop_all(self) -> None:
        """Stop the node, then its epmd (which daemonises and outlives it), by its pid."""
        self.stop()
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{self.epmd_port}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        match = re.search(r"pid=(\d+)", out)
        if match:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(match.group(1)), signal.SIGTERM)


@pytest.fixture(scope="module")
def private_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    if not os.path.exists(RABBITMQ_SERVER):
        server_missing("rabbitmq-server", f"{RABBITMQ_SERVER} is not installed")
    server = RabbitServer(tmp_path_factory.mktemp("rabbit"))
    try:
        server.start()
    except ServerStartError as exc:
        server.stop_all()
        server_missing("rabbitmq-server", str(exc))
    yield server
    server.stop_all()
