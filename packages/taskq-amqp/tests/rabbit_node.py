"""A RabbitMQ node of the tests' own, beside the system one: what the fault tests' private
node (``conftest.py``) and the TLS-only node (``tls_rabbitmq.py``) share.

Its own node name, ports, epmd, data, logs and Erlang cookie live under a work directory, with
no plugins; the caller gives its ``rabbitmq.conf`` (and ``advanced.config``). Without
rabbitmq-server, or when the node does not start, the test skips, or fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import amqp  # pyright: ignore[reportMissingTypeStubs]

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, ServerStartError, free_port

__all__ = ["RABBITMQ_SERVER", "RabbitNode"]

#: Debian's /usr/sbin/rabbitmq-server su's to the rabbitmq user; the script under it runs as
#: the caller, with the caller's environment.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitNode(ServerProcess):
    """A node named ``<name>@localhost`` whose clients connect to ``port``, configured by
    ``config`` (``rabbitmq.conf``), ``advanced_config`` and ``env`` (more variables for
    rabbitmq-server); ready once py-amqp connects to ``port`` with ``ssl`` (its TLS options,
    not the code under test), and restartable with its data."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        name: str,
        *,
        config: str,
        advanced_config: str | None = None,
        env: Mapping[str, str] | None = None,
        ssl: dict[str, Any] | None = None,
    ) -> None:
        self.port = port
        self.epmd_port = free_port()
        self._ssl = ssl
        (workdir / "plugins").write_text("[].\n")  # no management plugin, no port 15672
        (workdir / "rabbitmq.conf").write_text(config)
        variables = {
            # The Erlang cookie lives in $HOME: a fresh one here, not the system node's.
            "HOME": str(workdir),
            "RABBITMQ_NODENAME": f"{name}@localhost",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            **(env or {}),
        }
        if advanced_config is not None:
            (workdir / "advanced.config").write_text(advanced_config)
            variables["RABBITMQ_ADVANCED_CONFIG_FILE"] = str(workdir / "advanced.config")
        argv = ["env", *(f"{k}={v}" for k, v in variables.items()), RABBITMQ_SERVER]
        super().__init__(argv, self._ping, log_path=workdir / "server.log", start_timeout=60.0)

    def _ping(self) -> bool:
        connection = amqp.Connection(
            host=f"127.0.0.1:{self.port}",
            userid="guest",
            password="guest",
            connect_timeout=1,
            ssl=self._ssl or False,  # pyright: ignore[reportArgumentType]  (a dict too)
        )
        connection.connect()  # pyright: ignore[reportUnknownMemberType]
        connection.close()  # pyright: ignore[reportUnknownMemberType]
        return True

    @contextlib.contextmanager
    def serving(self, what: str) -> Generator[None, None, None]:
        """Start the node and stop it (and its epmd) on leaving; the test stops through
        ``server_missing(what, ...)`` when it is not installed or does not start."""
        if not os.path.exists(RABBITMQ_SERVER):
            server_missing("rabbitmq-server", f"{RABBITMQ_SERVER} is not installed")
        try:
            self.start()
        except ServerStartError as exc:
            self.stop_all()
            server_missing(what, str(exc))
        try:
            yield
        finally:
            self.stop_all()

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
