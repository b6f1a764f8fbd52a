"""A private Pyro name server and taskq's Pyro broker, started once per session.

The name server runs as ``python -m Pyro4.naming -n 127.0.0.1 -p <free port>`` and the broker
as ``python -m taskq_pyro.broker --host 127.0.0.1 --port <that port> --name <name>``; both are
stopped at the end. ``pyro_url`` points at the broker.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import Pyro4
import pytest

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, ServerStartError, free_port

BROKER_NAME = "kombu.broker"


def _name_server_answers(port: int) -> bool:
    nameserver: Any = Pyro4.locateNS(host="127.0.0.1", port=port)
    with nameserver:
        nameserver.ping()
    return True


def _broker_answers(port: int, name: str) -> bool:
    proxy: Any = Pyro4.Proxy(f"PYRONAME:{name}@127.0.0.1:{port}")
    with proxy:
        return proxy.taskq_api() == 1


@pytest.fixture(scope="session")
def pyro_name_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The name server's port."""
    workdir: Path = tmp_path_factory.mktemp("pyro")
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "Pyro4.naming", "-n", "127.0.0.1", "-p", str(port)],
        lambda: _name_server_answers(port),
        log_path=workdir / "nameserver.log",
    )
    try:
        server.start()
    except ServerStartError as exc:
        server_missing("Pyro name server", str(exc))
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pyro_url(pyro_name_server: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("pyro-broker")
    port = pyro_name_server
    broker = ServerProcess(
        [
            *(sys.executable, "-m", "taskq_pyro.broker", "--host", "127.0.0.1"),
            *("--port", str(port), "--name", BROKER_NAME),
        ],
        lambda: _broker_answers(port, BROKER_NAME),
        log_path=workdir / "broker.log",
    )
    try:
        broker.start()
    except ServerStartError as exc:
        server_missing("taskq Pyro broker", str(exc))
    try:
        yield f"pyro://127.0.0.1:{port}/{BROKER_NAME}"
    finally:
        broker.stop()
