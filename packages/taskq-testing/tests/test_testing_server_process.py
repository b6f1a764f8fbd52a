"""ServerProcess starts a real process, waits for its ping, stops it, and says why it failed."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from taskq_testing.servers import ServerProcess, ServerStartError, free_port

LISTENER = (
    "import socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'PONG'); c.close()\n"
)


def _ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
        return conn.recv(4) == b"PONG"


def test_start_waits_for_the_ping_and_stop_ends_the_process(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-c", LISTENER.format(port=port)],
        lambda: _ping(port),
        log_path=tmp_path / "log",
    )
    with server:
        assert server.running
        assert _ping(port)
        server.restart()
        assert _ping(port)
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        _ping(port)


def test_a_server_that_exits_reports_its_output(tmp_path: Path) -> None:
    server = ServerProcess(
        [sys.executable, "-c", "print('bad config: no such option'); raise SystemExit(1)"],
        lambda: False,
        log_path=tmp_path / "log",
        start_timeout=5,
    )
    with pytest.raises(ServerStartError, match="bad config: no such option"):
        server.start()
    assert not server.running
