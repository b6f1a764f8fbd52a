"""DirectConnection, the hot paths' single commands: replies and errors as redis-py gives
them, a connection the server closed replaced (with a warning) before the command goes out,
the health-check PING after an idle spell, threads sharing it, and a forked child using a
connection of its own."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import NoScriptError

from taskq_redis.connection import client_from_url
from taskq_redis.direct import IDLE_CLOSE, DirectConnection
from taskq_testing.concurrency import run_in_threads


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = client_from_url(redis_url, {})
    yield made
    made.close()
    made.connection_pool.disconnect()


@pytest.fixture
def direct(client: redis.Redis) -> Iterator[DirectConnection]:
    made = DirectConnection(client)
    yield made
    made.close()


def test_replies_come_back_as_redis_py_gives_them(
    direct: DirectConnection, client: redis.Redis, unique_name: str
) -> None:
    key = f"{unique_name}:k"
    try:
        assert direct.execute("GET", key) is None
        assert direct.execute("SET", key, b"\x00value") == b"OK"
        assert direct.execute("GET", key) == b"\x00value"
        assert direct.execute("RPUSH", key + "l", 1, 2.5, "three") == 3
        assert direct.execute("LRANGE", key + "l", 0, -1) == [b"1", b"2.5", b"three"]
    finally:
        client.delete(key, key + "l")


def test_a_reply_larger_than_one_read_arrives_whole(
    direct: DirectConnection, client: redis.Redis, unique_name: str
) -> None:
    values = {f"{unique_name}:{n}": bytes([n]) * 100_000 for n in range(5)}
    client.mset(values)  # pyright: ignore[reportArgumentType]
    try:
        assert direct.execute("MGET", *values) == list(values.values())
        assert direct.execute("PING") == b"PONG"  # nothing of it is left unread
    finally:
        client.delete(*values)


def test_an_error_reply_raises_and_leaves_the_connection_usable(
    direct: DirectConnection, client: redis.Redis, unique_name: str
) -> None:
    key = f"{unique_name}:list"
    client.rpush(key, b"x")
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            direct.execute("GET", key)
        with pytest.raises(NoScriptError):
            direct.execute("EVALSHA", "0" * 40, 0)
        assert direct.execute("LLEN", key) == 1
    finally:
        client.delete(key)


def test_a_connection_the_server_closed_is_replaced_before_the_command(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_from_url(redis_server.url, {})
    direct = DirectConnection(client)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="taskq_redis.direct"):
            first = direct.execute("CLIENT", "ID")
            assert not caplog.records  # the first connect is no news
            admin.client_kill_filter(_id=first)
            assert direct.execute("INCR", "counter") == 1  # sent once, on a new connection
        # The only sign of a restart between two commands, for whoever reads the log.
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert record.getMessage().startswith("Redis closed the connection (idle ")
        # Long idle, the likely work of Redis's own `timeout`: said at INFO only.
        caplog.clear()
        second = direct.execute("CLIENT", "ID")
        admin.client_kill_filter(_id=second)
        direct._used_at -= IDLE_CLOSE + 1  # pyright: ignore[reportPrivateUsage]
        with caplog.at_level(logging.INFO, logger="taskq_redis.direct"):
            assert direct.execute("INCR", "counter") == 2
        [record] = caplog.records
        assert record.levelno == logging.INFO
        assert direct.execute("CLIENT", "ID") not in (first, second)
        assert admin.get("counter") == b"2"
    finally:
        direct.close()
        client.close()
        admin.close()


def _pings(admin: redis.Redis) -> int:
    stats: dict[str, Any] = admin.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


def test_an_idle_connection_is_checked_with_a_ping_first(redis_server: Any) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    checked = client_from_url(redis_server.url, {"health_check_interval": 0.000001})
    unchecked = client_from_url(redis_server.url, {"health_check_interval": 0})
    checking, not_checking = DirectConnection(checked), DirectConnection(unchecked)
    try:
        # Connected first: redis-py's handshake makes health checks of its own.
        checking.execute("GET", "k")
        not_checking.execute("GET", "k")
        before = _pings(admin)
        for _ in range(3):
            not_checking.execute("GET", "k")
        assert _pings(admin) == before
        for _ in range(3):
            checking.execute("GET", "k")
        assert _pings(admin) == before + 3
    finally:
        checking.close()
        not_checking.close()
        for made in (checked, unchecked):
            made.close()
        admin.close()


def test_threads_sharing_it_each_get_their_own_replies(
    direct: DirectConnection, client: redis.Redis, unique_name: str
) -> None:
    key = f"{unique_name}:n"
    wrong: list[tuple[bytes, object]] = []

    def work(index: int) -> None:
        for n in range(200):
            value = f"{index}:{n}".encode()
            reply = direct.execute("ECHO", value)
            if reply != value:
                wrong.append((value, reply))
            direct.execute("INCR", key)

    try:
        run_in_threads(work, 8)
        assert wrong == []
        assert client.get(key) == b"1600"
    finally:
        client.delete(key)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_a_connection_of_its_own(direct: DirectConnection) -> None:
    parent_id = direct.execute("CLIENT", "ID")
    # The fork happens while another thread holds the connection's lock: the child must
    # neither wait for it nor use the parent's socket.
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with direct._lock:  # pyright: ignore[reportPrivateUsage]
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            child_id = direct.execute("CLIENT", "ID")
            again = direct.execute("CLIENT", "ID")
            os.write(write, b"%d %d" % (child_id, again))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    release.set()
    holder.join()
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_id, again = (int(part) for part in answer.split())
    assert child_id == again != parent_id
    assert direct.execute("CLIENT", "ID") == parent_id
