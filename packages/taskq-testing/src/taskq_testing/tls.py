# pyright: strict
"""TLS test support: certificates made with ``openssl`` at test time, and a counting proxy.

:func:`make_tls_files` makes, as an operator would, a throwaway CA that signs a server
certificate (for ``localhost`` and ``127.0.0.1``) and a client certificate, plus a second,
unrelated CA that plays the wrong one. :class:`CountingProxy` forwards TCP connections to a
server and counts them: a failed TLS handshake leaves no trace in a server's own counters, so
this is how a test proves that a client tried once and did not reconnect. A
:class:`ClosingListener` counts connections and closes them at once.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskq_testing.plugin import server_missing
from taskq_testing.servers import binary_or_none

__all__ = ["ClosingListener", "CountingListener", "CountingProxy", "TLSFiles", "make_tls_files"]


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The PEM files :func:`make_tls_files` made."""

    ca: Path
    #: Signed by ``ca``, for ``localhost`` and ``127.0.0.1``.
    server_cert: Path
    server_key: Path
    #: Signed by ``ca``: what a server that verifies clients asks for.
    client_cert: Path
    client_key: Path
    #: A CA that signed nothing a server presents.
    wrong_ca: Path

    def broker_use_ssl(self, ca: Path | None = None) -> dict[str, Any]:
        """Celery's ``broker_use_ssl`` mapping in the ssl module's names (py-amqp's), with
        the client certificate and ``ca`` (default: the right one) as the CA."""
        return {
            "ca_certs": str(ca or self.ca),
            "cert_reqs": ssl.CERT_REQUIRED,
            "certfile": str(self.client_cert),
            "keyfile": str(self.client_key),
        }


def make_tls_files(directory: Path) -> TLSFiles:
    """Make the CAs and certificates in ``directory`` with the ``openssl`` command.

    Without openssl the test stops through :func:`~taskq_testing.plugin.server_missing`
    (skips, or fails under ``CI=true``); a command that fails raises RuntimeError.
    """
    binary = binary_or_none("openssl", "/usr/bin", "/usr/local/bin")
    if binary is None:
        server_missing("openssl", "the binary is not installed (apt-get install openssl)")
    ca = _make_ca(binary, directory, "ca")
    wrong_ca = _make_ca(binary, directory, "wrong-ca")
    # clientAuth too: redis-server presents its one certificate on its own outgoing (Sentinel,
    # replication) connections as well.
    server_extensions = (
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _make_signed(binary, directory, "server", server_extensions)
    _make_signed(binary, directory, "client", "extendedKeyUsage=clientAuth\n")
    return TLSFiles(
        ca,
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
        wrong_ca,
    )


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


class CountingListener:
    """Listens on 127.0.0.1:``port`` and counts the connections it accepts in ``accepted``;
    what happens to each is a subclass's :meth:`handle`. ``close()`` stops it."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # shut down by close()
                return
            self.accepted += 1
            self.handle(connection)

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        self._thread.join()
        self._socket.close()


class CountingProxy(CountingListener):
    """Forwards each connection it counts to 127.0.0.1:``target``. With ``hold``, a
    connection is counted at once but forwarded only once ``hold`` is set. ``close()`` also
    ends the connections."""

    def __init__(self, target: int, hold: threading.Event | None = None) -> None:
        self._target = target
        self._hold = hold
        self._open: list[socket.socket] = []
        super().__init__()

    def handle(self, connection: socket.socket) -> None:
        if self._hold is not None:
            self._hold.wait()
        server = socket.create_connection(("127.0.0.1", self._target))
        self._open += (connection, server)
        for source, sink in ((connection, server), (server, connection)):
            threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        super().close()
        for connection in self._open:
            connection.close()


class ClosingListener(CountingListener):
    """Closes each connection it counts at once: a server that is up but cannot be talked to,
    as one whose certificate does not verify."""

    def handle(self, connection: socket.socket) -> None:
        connection.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:  # the other side, or close(), ended the connection
        pass
