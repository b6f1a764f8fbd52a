"""Where the Redis tests find Redis.

``redis_url``: the shared server for tests that only need *a* Redis: ``$REDIS_URL``, else
localhost:6379 when it answers PING, else a ``redis-server`` this session starts on a free port.
With none of these the test skips with the reason, or fails under ``CI=true``.

``redis_server``: a private ``redis-server`` a test may stop, restart or configure (TLS, a Unix
socket, Sentinel), started from the same binary; ``start_redis(*args)`` starts more of them.
``sentinel_url``: a Sentinel watching a private master named ``mymaster``.

``interop_apps(url, transport_options)``: the worker apps in ``interop_apps/`` (a taskq app and
a Celery app on one Redis), to start real worker processes from.

``prefix``, ``raw`` and ``open_transport(url=None, **options)``: transports on the shared Redis
under a unique ``global_keyprefix``, and a plain client that deletes that prefix's keys after.

Every test isolates itself by key names (``unique_name``), never by flushing a database.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq.contracts import TransportError
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, binary_or_none, free_port
from taskq_testing.worker_processes import InteropApps

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
APPS = Path(__file__).resolve().parent / "interop_apps"


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class RedisServer(ServerProcess):
    """A private redis-server on a free port; ``url`` points at its database 0."""

    def __init__(self, binary: str, workdir: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            *extra_args,
        ]  # fmt: skip
        super().__init__(argv, self._ping, log_path=workdir / f"redis-{self.port}.log")

    def _ping(self) -> bool:
        return _answers(self.url)


StartRedis = Callable[..., RedisServer]


@pytest.fixture(scope="session")
def _redis_binary() -> str | None:
    return binary_or_none("redis-server", "/usr/bin", "/usr/sbin", "/usr/local/bin")


@pytest.fixture(scope="session")
def redis_url(_redis_binary: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        if not _answers(configured):
            server_missing("Redis", f"REDIS_URL={configured} does not answer PING")
        yield configured
        return
    if _answers(LOCAL_REDIS):
        yield LOCAL_REDIS
        return
    if _redis_binary is None:
        server_missing(
            "Redis",
            "nothing answers on localhost:6379 and no redis-server binary is installed "
            "(apt-get install redis-server, or set REDIS_URL)",
        )
    server = RedisServer(_redis_binary, tmp_path_factory.mktemp("redis"))
    with server:
        yield server.url


@pytest.fixture
def start_redis(_redis_binary: str | None, tmp_path: Path) -> Iterator[StartRedis]:
    """A function starting private redis-servers (extra argv allowed); all stop at the end."""
    started: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        if _redis_binary is None:
            server_missing(
                "redis-server", "the binary is not installed (apt-get install redis-server)"
            )
        server = RedisServer(_redis_binary, tmp_path, *extra_args)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(start_redis: StartRedis) -> RedisServer:
    """One private redis-server this test may stop and restart."""
    return start_redis()


@pytest.fixture
def sentinel_url(
    redis_server: RedisServer, _redis_binary: str | None, tmp_path: Path
) -> Iterator[str]:
    """A Sentinel watching a private master named ``mymaster``."""
    assert _redis_binary is not None
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )

    def answers() -> bool:
        try:
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                return bool(
                    client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
                )
            finally:
                client.close()
        except redis.RedisError:
            return False

    process = ServerProcess(
        [_redis_binary, str(config), "--sentinel"], answers, log_path=tmp_path / "sentinel.log"
    )
    with process:
        yield f"sentinel://127.0.0.1:{port}"


ConfigureApps = Callable[..., InteropApps]


@pytest.fixture(scope="session")
def interop_apps() -> ConfigureApps:
    """``interop_apps/`` for real workers: broker, results and counts all on ``url``."""

    def configure(url: str, transport_options: Mapping[str, Any] | None = None) -> InteropApps:
        variables = {
            "INTEROP_REDIS_URL": url,
            "INTEROP_TRANSPORT_OPTIONS": json.dumps(dict(transport_options or {})),
        }
        return InteropApps(APPS, "taskq_side", "celery_side", variables)

    return configure


Open = Callable[..., RedisTransport]


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}:"


@pytest.fixture
def raw(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def open_transport(redis_url: str, prefix: str, raw: redis.Redis) -> Iterator[Open]:
    """Transports on the shared Redis, isolated by a unique ``global_keyprefix`` (``raw``
    deletes the prefix's keys after the transports are closed)."""
    opened: list[RedisTransport] = []

    def open_transport(url: str | None = None, **options: Any) -> RedisTransport:
        options.setdefault("global_keyprefix", prefix)
        transport = RedisTransport(url or redis_url, options)
        transport.connect()
        opened.append(transport)
        return transport

    yield open_transport
    for transport in opened:
        with contextlib.suppress(TransportError):
            transport.close()


RoundTrip = Callable[[str, Mapping[str, Any], str], None]


def _round_trip(url: str, options: Mapping[str, Any], queue: str) -> None:
    transport = RedisTransport(url, dict(options))
    try:
        transport.connect()
        envelope = make_envelope(queue)
        transport.publish(queue, envelope)
        got = transport.fetch([queue], 1, 5.0)
        assert [task_id_of(delivery) for delivery in got] == [task_id_of(envelope)]
        transport.ack(got)
        assert transport.queue_length(queue) == 0
    finally:
        transport.close()


@pytest.fixture
def round_trip() -> RoundTrip:
    """``round_trip(url, options, queue)``: publish, fetch and ack one message through a
    transport built from ``url`` (how the URL and TLS tests prove a connection works)."""
    return _round_trip
