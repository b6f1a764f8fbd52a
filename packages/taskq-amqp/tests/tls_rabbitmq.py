"""A RabbitMQ node that speaks only TLS, and the certificates it and its clients use.

A throwaway CA signs a server certificate (for ``localhost`` and ``127.0.0.1``) and a client
certificate, made with the ``openssl`` command as an operator would make them; a second,
unrelated CA plays the wrong one. The node is a second RabbitMQ beside the system one (its
own node name, ports, epmd, data, logs and Erlang cookie under a temporary HOME, no plugins),
with no plain-text listener: one TLS listener that verifies clients and refuses any without a
certificate its CA signed (``fail_if_no_peer_cert``), so a connection that works proves that
the client's certificate and key reached the handshake as well as the CA.

Without openssl or rabbitmq-server, or when the node does not start, the tests skip, or
fail under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import amqp  # pyright: ignore[reportMissingTypeStubs]
import pytest

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, ServerStartError, binary_or_none, free_port

__all__ = ["TLSFiles", "TlsRabbit", "tls_files", "tls_rabbit"]

#: Debian's /usr/sbin/rabbitmq-server su's to the rabbitmq user; the script under it runs as
#: the caller, with the caller's environment.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


@dataclass(frozen=True, slots=True)
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    #: Signed by ``ca``: what the node asks every client for.
    client_cert: Path
    client_key: Path
    #: A CA that signed nothing the node presents.
    wrong_ca: Path

    def broker_use_ssl(self, ca: Path | None = None) -> dict[str, Any]:
        """Celery's ``broker_use_ssl`` mapping for py-amqp, with ``ca`` (default: the right
        one) as the CA."""
        return {
            "ca_certs": str(ca or self.ca),
            "cert_reqs": ssl.CERT_REQUIRED,
            "certfile": str(self.client_cert),
            "keyfile": str(self.client_key),
        }


def _openssl(binary: str, directory: Path, *args: str) -> None:
    done = subprocess.run(
        [binary, *args], cwd=directory, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def _make_ca(binary: str, directory: Path, name: str) -> Path:
    _openssl(
        binary, directory,
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return directory / f"{name}.pem"


def _make_signed(binary: str, directory: Path, name: str, extensions: str) -> None:
    """``<name>.pem`` and ``<name>.key``, signed by ``ca.pem``."""
    (directory / f"{name}.ext").write_text(
        f"{extensions}basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        binary, directory,
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        binary, directory,
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
    )  # fmt: skip


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    binary = binary_or_none("openssl", "/usr/bin", "/usr/local/bin")
    if binary is None:
        server_missing("openssl", "the binary is not installed (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("amqp-tls")
    ca = _make_ca(binary, directory, "ca")
    wrong_ca = _make_ca(binary, directory, "wrong-ca")
    _make_signed(
        binary,
        directory,
        "server",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    _make_signed(binary, directory, "client", "extendedKeyUsage=clientAuth\n")
    return TLSFiles(
        ca,
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
        wrong_ca,
    )


class TlsRabbit(ServerProcess):
    """A RabbitMQ node of its own whose only listener is TLS on ``port``."""

    def __init__(self, workdir: Path, files: TLSFiles) -> None:
        self.port, dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.files = files
        (workdir / "plugins").write_text("[].\n")  # no management plugin, no port 15672
        (workdir / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{self.port}\n"
            f"ssl_options.cacertfile = {files.ca}\n"
            f"ssl_options.certfile = {files.server_cert}\n"
            f"ssl_options.keyfile = {files.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
        )
        env = {
            # The Erlang cookie lives in $HOME: a fresh one here, not the system node's.
            "HOME": str(workdir),
            "RABBITMQ_NODENAME": f"taskqtls{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), RABBITMQ_SERVER]
        super().__init__(argv, self._ping, log_path=workdir / "server.log", start_timeout=60.0)

    def url(self, host: str = "localhost", query: str = "") -> str:
        return f"amqps://guest:guest@{host}:{self.port}//" + (f"?{query}" if query else "")

    def _ping(self) -> bool:
        """A TLS connection through py-amqp's own TLS options, not the code under test."""
        connection = amqp.Connection(
            host=f"127.0.0.1:{self.port}",
            userid="guest",
            password="guest",
            connect_timeout=1,
            ssl=self.files.broker_use_ssl(),  # pyright: ignore[reportArgumentType]  (a dict too)
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


@pytest.fixture(scope="session")
def tls_rabbit(
    tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsRabbit]:
    if not os.path.exists(RABBITMQ_SERVER):
        server_missing("rabbitmq-server", f"{RABBITMQ_SERVER} is not installed")
    server = TlsRabbit(tmp_path_factory.mktemp("rabbit-tls"), tls_files)
    try:
        server.start()
    except ServerStartError as exc:
        server.stop_all()
        server_missing("rabbitmq-server with TLS", str(exc))
    yield server
    server.stop_all()
