"""The result backend over every URL form: its subscriber connects the way its client does
(Unix socket, password, another database, a master found through Sentinel)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from taskq.contracts import BackendOptions
from taskq_protocol import ResultMeta
from taskq_redis.backend import RedisBackend
from taskq_testing.factories import make_meta


def _store_while_waiting(url: str, transport_options: dict[str, Any]) -> None:
    """One backend waits while another stores: the waiter's subscriber must hear it."""
    options = BackendOptions(transport_options=transport_options)
    waiter, writer = RedisBackend(url, options), RedisBackend(url, options)
    meta = make_meta(result="over " + url.partition("://")[0])
    got: dict[str, ResultMeta] = {}
    try:
        waiting = threading.Thread(target=lambda: got.update(waiter.wait([meta.task_id], 10)))
        waiting.start()
        threading.Timer(0.2, writer.store, (meta,)).start()
        waiting.join(10)
        assert got == {meta.task_id: meta}
        assert writer.get(meta.task_id) == meta
    finally:
        waiter.close()
        writer.close()


def test_unix_socket(start_redis: Callable[..., Any], tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    start_redis("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    _store_while_waiting(f"redis+socket://{socket_path}?virtual_host=2", {})


def test_password_and_database(start_redis: Callable[..., Any]) -> None:
    server = start_redis()
    admin = redis.Redis.from_url(server.url)
    admin.config_set("requirepass", "s3cret")  # after start: the fixture pings without one
    admin.close()
    url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
    _store_while_waiting(url, {})
    client = redis.Redis.from_url(url)
    try:
        assert client.dbsize() > 0, "the results went to database 3"
    finally:
        client.close()


def test_sentinel(sentinel_url: str) -> None:
    _store_while_waiting(sentinel_url, {"master_name": "mymaster"})
