"""A private ZooKeeper for the tests: started once per session on a free port, stopped after.

ZooKeeper is started the way /work/shared/SERVERS.md shows (java on the Debian package's jar,
no admin server, bound to 127.0.0.1), with a short tick so the kill test's session timeout
can be two seconds. ``$ZOOKEEPER_URL`` points the tests at a server of your own instead. With
no java or no zookeeper.jar the tests skip with the reason (fail under ``CI=true``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, ServerStartError, binary_or_none, free_port

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZOOKEEPER_CONF = "/etc/zookeeper/conf"


def ruok(host: str, port: int) -> bool:
    """ZooKeeper's own health check: ``ruok`` answered with ``imok``."""
    with socket.create_connection((host, port), timeout=1) as sock:
        sock.sendall(b"ruok")
        return sock.recv(16) == b"imok"


class ZookeeperServer(ServerProcess):
    def __init__(self, java: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"zookeeper://127.0.0.1:{self.port}/"
        config = workdir / "zoo.cfg"
        config.write_text(
            "tickTime=500\n"
            f"dataDir={workdir / 'data'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,srvr\n"
            "minSessionTimeout=1000\n"
            "maxSessionTimeout=60000\n"
        )
        argv = [
            java,
            "-Xmx256m",
            "-cp", f"{ZOOKEEPER_CONF}:{ZOOKEEPER_JAR}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(config),
        ]  # fmt: skip
        super().__init__(
            argv,
            lambda: ruok("127.0.0.1", self.port),
            log_path=workdir / "zookeeper.log",
            start_timeout=60.0,
        )


@pytest.fixture(scope="session")
def zookeeper_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("ZOOKEEPER_URL")
    if configured:
        yield configured
        return
    java = binary_or_none("java", "/usr/bin")
    if java is None or not Path(ZOOKEEPER_JAR).is_file():
        server_missing("ZooKeeper", f"needs java and {ZOOKEEPER_JAR} (apt-get install zookeeper)")
    server = ZookeeperServer(java, tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
    except ServerStartError as exc:
        server_missing("ZooKeeper", str(exc))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def zookeeper_vhost_url(zookeeper_url: str, unique_name: str) -> str:
    """The server's URL with a vhost of this test's own, so tests never see each other."""
    return zookeeper_url.rstrip("/") + "/" + unique_name
