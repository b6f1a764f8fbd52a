"""Puts tools/ and this directory on sys.path: the tools are scripts, not an installed package."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for directory in (HERE.parent, HERE):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from workspace_factory import build_workspace  # noqa: E402  (needs the path above)


@pytest.fixture
def fake_workspace(tmp_path: Path) -> Path:
    """A small workspace that passes every rule: protocol, serializers and the meta-package."""
    return build_workspace(tmp_path / "ws")


def _redis_pings(port: int) -> bool:
    import redis

    return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())


@pytest.fixture
def bench_redis_url(tmp_path: Path) -> Iterator[str]:
    """Database 15 of a private redis-server when the binary exists (the benchmarks flush their
    database, and another run may have left keys on the shared one); else of the shared server."""
    from urllib.parse import urlsplit, urlunsplit

    from taskq_testing.plugin import require_server
    from taskq_testing.servers import ServerProcess, binary_or_none, free_port

    binary = binary_or_none("redis-server", "/usr/bin", "/usr/sbin", "/usr/local/bin")
    if binary is None:
        server = require_server(
            "Redis", "REDIS_URL", "redis://127.0.0.1:6379/15", default_port=6379
        )
        yield urlunsplit(urlsplit(server)._replace(path="/15"))
        return
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
            "no", "--dir", str(tmp_path)]  # fmt: skip
    with ServerProcess(argv, lambda: _redis_pings(port), log_path=tmp_path / "redis.log"):
        yield f"redis://127.0.0.1:{port}/15"
