"""Commands posted on a DirectConnection without waiting for their replies (how taskq-redis
publishes by default), on a private redis-server each: they run in order; replies are read
before any command that waits; the window and the age limit bound what stays unanswered; a
refused one is raised once, later; NOSCRIPT loads the script and sends again; a lost
connection sends the unanswered ones again; and the transport's use of them: ``flush``,
``confirm_publish``, ``close`` and a settle that must not overtake a refused publish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from taskq.contracts import TransportError
from taskq_protocol import Envelope
from taskq_redis.connection import client_from_url
from taskq_redis.direct import DirectConnection
from taskq_redis.scripts import Script
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_envelope

_APPEND = Script("append", "return redis.call('RPUSH', KEYS[1], ARGV[1])")


@pytest.fixture
def admin(redis_server: Any) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_server.url)
    yield made
    made.close()


def _direct(url: str, **kw: Any) -> DirectConnection:
    return DirectConnection(client_from_url(url, {}), **kw)


def _posted_first(direct: DirectConnection, key: str) -> None:
    """The first command on a connection waits for its reply; later ones are posted."""
    direct.post("RPUSH", key, "first")
    assert direct.unanswered == 0


def test_posted_commands_run_in_order_and_a_waiting_command_reads_their_replies_first(
    redis_server: Any, admin: redis.Redis
) -> None:
    direct = _direct(redis_server.url)
    try:
        _posted_first(direct, "k")
        for n in range(100):
            direct.post("RPUSH", "k", n)
        assert direct.unanswered > 0  # sent, not waited for
        assert direct.execute("LLEN", "k") == 101  # its own reply, after theirs
        assert direct.unanswered == 0
        assert admin.lrange("k", 0, -1) == [b"first", *(str(n).encode() for n in range(100))]
    finally:
        direct.close()


def test_the_window_and_the_age_limit_bound_what_stays_unanswered(redis_server: Any) -> None:
    direct = _direct(redis_server.url, window=10, max_age=60.0)
    try:
        _posted_first(direct, "w")
        most = 0
        for n in range(50):
            direct.post("RPUSH", "w", n)
            most = max(most, direct.unanswered)
        assert most <= 11  # the window, plus the post that found it full
        direct.flush()
        direct.max_age = 0.01
        direct.post("RPUSH", "w", "a")
        time.sleep(0.05)
        direct.post("RPUSH", "w", "b")  # the oldest is too old: every reply is read first
        assert direct.unanswered <= 1
    finally:
        direct.close()


@pytest.fixture
def refusing(redis_server: Any, admin: redis.Redis) -> Iterator[DirectConnection]:
    """A connection on which "first" went to the list ``ok`` and, since, a command Redis
    refuses was posted (RPUSH to a key holding a string: WRONGTYPE)."""
    admin.set("a-string", "x")
    direct = _direct(redis_server.url)
    _posted_first(direct, "ok")
    direct.post("RPUSH", "a-string", "y")
    yield direct
    direct.close()


def test_a_refused_command_is_raised_once_by_the_next_flush(
    refusing: DirectConnection, admin: redis.Redis
) -> None:
    refusing.post("RPUSH", "ok", "after")
    with pytest.raises(redis.ResponseError, match=r"refused 1 command.*WRONGTYPE"):
        refusing.flush()
    refusing.flush()  # said once
    assert admin.lrange("ok", 0, -1) == [b"first", b"after"]


def test_a_post_raises_an_earlier_refusal_and_does_not_send_its_own_command(
    refusing: DirectConnection, admin: redis.Redis
) -> None:
    assert refusing.execute("PING") == b"PONG"  # reads the refusal
    assert refusing.refused == 1
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        refusing.post("RPUSH", "ok", "not sent")
    refusing.flush()
    assert admin.lrange("ok", 0, -1) == [b"first"]


def test_a_script_the_server_forgot_is_loaded_and_the_command_sent_again(
    redis_server: Any, admin: redis.Redis
) -> None:
    direct = _direct(redis_server.url)
    try:
        _APPEND.post_direct(direct, ["s"], ["0"])  # the first waits: loads the script
        for n in range(1, 4):
            _APPEND.post_direct(direct, ["s"], [str(n)])
        direct.flush()
        admin.script_flush()
        for n in range(4, 20):
            _APPEND.post_direct(direct, ["s"], [str(n)])
        direct.flush()  # NOSCRIPT for the first, and for those sent before its reload
        # Each ran once; those refused with NOSCRIPT ran after the reload, later in order.
        assert sorted(int(v) for v in admin.lrange("s", 0, -1)) == list(range(20))
        assert direct.refused == 0
    finally:
        direct.close()


def test_commands_unanswered_when_the_connection_is_lost_are_sent_again(
    redis_server: Any, admin: redis.Redis
) -> None:
    """Paused (CLIENT PAUSE WRITE), Redis holds the posted commands unrun; the connection is
    then killed, so they never run on it: they run once, on the next connection."""
    direct = _direct(redis_server.url)
    try:
        _posted_first(direct, "lost")
        own_id = direct.execute("CLIENT", "ID")
        admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        for n in range(20):
            direct.post("RPUSH", "lost", n)
        time.sleep(0.2)  # read by Redis, held by the pause
        admin.client_kill_filter(_id=own_id)
        admin.execute_command("CLIENT", "UNPAUSE")
        direct.flush()  # finds the connection lost: connects, sends the 20 again, reads them
        assert admin.lrange("lost", 0, -1) == [b"first", *(str(n).encode() for n in range(20))]
        assert direct.execute("CLIENT", "ID") != own_id
    finally:
        direct.close()


# -- the transport ----------------------------------------------------------------------------


def _envelope() -> Envelope:
    return make_envelope()


def test_the_transport_posts_publishes_unless_confirm_publish(
    redis_server: Any, unique_name: str
) -> None:
    posting = RedisTransport(redis_server.url, {})
    waiting = RedisTransport(redis_server.url, {"confirm_publish": True})
    try:
        for transport in (posting, waiting):
            transport.connect()
            for _ in range(5):
                transport.publish(unique_name, _envelope())
        assert posting.unconfirmed > 0
        assert waiting.unconfirmed == 0
        posting.flush()
        assert posting.unconfirmed == 0
        assert posting.queue_length(unique_name) == 10
    finally:
        posting.close()
        waiting.close()


def test_close_raises_when_a_publish_was_refused(redis_server: Any, admin: redis.Redis) -> None:
    transport = RedisTransport(redis_server.url, {})
    transport.connect()
    transport.publish("fine", _envelope())  # the first waits
    admin.set("broken", "not a list")
    transport.publish("broken", _envelope())
    with pytest.raises(TransportError, match="WRONGTYPE"):
        transport.close()


def test_a_settle_does_not_overtake_a_refused_publish(
    redis_server: Any, admin: redis.Redis
) -> None:
    """A worker publishes a copy, then acks the original: when Redis refuses the copy, the
    ack is not sent and the original stays unacked (it comes back, nothing is lost)."""
    transport = RedisTransport(redis_server.url, {})
    transport.connect()
    try:
        transport.publish("work", _envelope())
        [delivery] = transport.fetch(["work"], 1, 1.0)
        admin.set("copies", "not a list")
        transport.publish("copies", _envelope())  # refused
        with pytest.raises(TransportError, match="earlier publish failed"):
            transport.ack([delivery])
        assert admin.hlen("unacked") == 1
        transport.ack([delivery])  # the refusal was said once; this ack goes
        assert admin.hlen("unacked") == 0
    finally:
        transport.close()
