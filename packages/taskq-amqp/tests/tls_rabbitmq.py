"""A RabbitMQ node that speaks only TLS, and the certificates it and its clients use.

The certificates are taskq_testing.tls's, made with the ``openssl`` command: a throwaway CA
signs the server's (for ``localhost`` and ``127.0.0.1``) and a client's; a second, unrelated
CA plays the wrong one. The node (``rabbit_node.py``) has no plain-text listener: one TLS
listener that verifies clients and refuses any without a certificate its CA signed
(``fail_if_no_peer_cert``), so a connection that works proves that the client's certificate
and key reached the handshake as well as the CA.

Without openssl or rabbitmq-server, or when the node does not start, the tests skip, or
fail under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rabbit_node import RabbitNode

from taskq_testing.servers import free_port
from taskq_testing.tls import TLSFiles, make_tls_files

__all__ = ["TlsRabbit", "tls_files", "tls_rabbit"]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("amqp-tls"))


class TlsRabbit(RabbitNode):
    """A RabbitMQ node of its own whose only listener is TLS on ``port``."""

    def __init__(self, workdir: Path, files: TLSFiles) -> None:
        port = free_port()
        super().__init__(
            workdir,
            port,
            f"taskqtls{port}",
            config=(
                "listeners.tcp = none\n"
                f"listeners.ssl.default = 127.0.0.1:{port}\n"
                f"ssl_options.cacertfile = {files.ca}\n"
                f"ssl_options.certfile = {files.server_cert}\n"
                f"ssl_options.keyfile = {files.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
            ),
            ssl=files.broker_use_ssl(),
        )

    def url(self, host: str = "localhost", query: str = "") -> str:
        return f"amqps://guest:guest@{host}:{self.port}//" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def tls_rabbit(
    tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsRabbit]:
    server = TlsRabbit(tmp_path_factory.mktemp("rabbit-tls"), tls_files)
    with server.serving("rabbitmq-server with TLS"):
        yield server
