"""The result subscriber read by the waiting threads themselves: one pipelined SUBSCRIBE + GET
on RESP3, subscribe-confirm-read on RESP2, the reader's role passed between waiting threads,
deadlines that leave the connection usable, and channels unsubscribed with the next write."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq.contracts import BackendOptions
from taskq_protocol import ResultMeta
from taskq_redis.backend import RedisBackend
from taskq_redis.results_subscriber import ResultSubscriber
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import make_meta
from taskq_testing.waiting import wait_until

OpenBackend = Callable[[int], RedisBackend]
PROTOCOLS = [pytest.param(3, id="resp3"), pytest.param(2, id="resp2")]


def _backend(url: str, opened: list[RedisBackend], protocol: int | None = None) -> RedisBackend:
    backend = RedisBackend(
        url,
        BackendOptions(
            transport_options={}, serializer="json", accept=frozenset({"application/json"})
        ),
    )
    if protocol is not None:
        # The backend makes its subscriber on first use; this one speaks the protocol asked.
        backend._subscriber = ResultSubscriber(  # pyright: ignore[reportPrivateUsage]
            backend.client, backend.retry.certificates, protocol=protocol
        )
    opened.append(backend)
    return backend


@pytest.fixture
def open_backend(redis_url: str) -> Iterator[OpenBackend]:
    opened: list[RedisBackend] = []
    yield lambda protocol: _backend(redis_url, opened, protocol)
    for backend in opened:
        backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_result_stored_before_the_wait_is_found(open_backend: OpenBackend, protocol: int) -> None:
    waiter, writer = open_backend(protocol), open_backend(3)
    for round_ in range(20):
        meta = make_meta(result=round_)
        writer.store(meta)
        assert waiter.wait([meta.task_id], 5) == {meta.task_id: meta}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_result_stored_while_waiting_is_delivered(
    open_backend: OpenBackend, protocol: int
) -> None:
    waiter, writer = open_backend(protocol), open_backend(3)
    for round_ in range(60):
        meta = make_meta(result=round_)
        storing = threading.Timer((round_ % 6) * 0.002, writer.store, (meta,))
        storing.start()
        got = waiter.wait([meta.task_id], 10)
        storing.join()
        assert got == {meta.task_id: meta}, f"round {round_}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_waiting_threads_pass_the_reading_on(open_backend: OpenBackend, protocol: int) -> None:
    # Results arrive one at a time, in the reverse of the order the threads started waiting:
    # whichever thread reads gets other threads' results, files them, and hands the reading to
    # another when its own result came. Every thread must get its own.
    waiter, writer = open_backend(protocol), open_backend(3)
    metas = [make_meta(result=i) for i in range(8)]
    waiting = threading.Semaphore(0)

    def wait(index: int) -> dict[str, ResultMeta]:
        waiting.release()
        return waiter.wait([metas[index].task_id], 30)

    def store() -> None:
        for _ in metas:
            waiting.acquire(timeout=30)
        time.sleep(0.1)  # every thread is in wait(): subscribed, one reading
        for meta in reversed(metas):
            writer.store(meta)
            time.sleep(0.01)

    storing = threading.Thread(target=store)
    storing.start()
    results = run_in_threads(wait, len(metas))
    storing.join(30)
    assert results == [{meta.task_id: meta} for meta in metas]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_wait_that_times_out_leaves_the_connection_usable(
    open_backend: OpenBackend, protocol: int
) -> None:
    # Deadlines end reads at any point, also between a SUBSCRIBE and its answers; what comes
    # later is filed under the right waiter.
    waiter, writer = open_backend(protocol), open_backend(3)
    for round_ in range(40):
        missing = str(uuid.uuid4())
        assert waiter.wait([missing], 0.0005 * (round_ % 5)) == {}
        meta = make_meta(result=round_)
        writer.store(meta)
        assert waiter.wait([meta.task_id], 5) == {meta.task_id: meta}


def test_one_round_trip_reads_a_stored_result_on_resp3(start_redis: Callable[..., Any]) -> None:
    # A private server: command counts are server-wide.
    server = start_redis()
    opened: list[RedisBackend] = []
    raw = redis.Redis.from_url(server.url)
    try:
        waiter, writer = _backend(server.url, opened, 3), _backend(server.url, opened, 3)
        warm = make_meta(result="warm")
        writer.store(warm)
        assert waiter.wait([warm.task_id], 5) == {warm.task_id: warm}  # connected
        meta = make_meta(result="stored")
        writer.store(meta)
        raw.config_resetstat()
        assert waiter.wait([meta.task_id], 5) == {meta.task_id: meta}
        stats: dict[str, Any] = raw.info("commandstats")  # pyright: ignore[reportAssignmentType]
    finally:
        raw.close()
        for backend in opened:
            backend.close()
    # The GET went out with the SUBSCRIBE; no MGET before it, none after the confirmation.
    assert "cmdstat_mget" not in stats
    assert stats["cmdstat_get"]["calls"] == 1
    assert stats["cmdstat_subscribe"]["calls"] == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_channels_left_are_unsubscribed_with_the_next_subscribe(
    open_backend: OpenBackend, raw: redis.Redis, protocol: int
) -> None:
    waiter, writer = open_backend(protocol), open_backend(3)
    first, second = make_meta(result=1), make_meta(result=2)
    writer.store_many([first, second])
    assert waiter.wait([first.task_id], 5) == {first.task_id: first}
    assert waiter.wait([second.task_id], 5) == {second.task_id: second}
    channel = f"celery-task-meta-{first.task_id}"
    wait_until(
        lambda: raw.pubsub_numsub(channel)[0][1] == 0, 5.0, message="first channel unsubscribed"
    )


# -- Redis away ---------------------------------------------------------------------------------


def _subscriber_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "taskq_redis.results_subscriber" and record.levelno == level
    ]


def test_an_outage_is_one_warning_not_one_per_attempt(
    start_redis: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A wait while Redis is down tries again and again, backing off, and says so once; its
    end is logged, and the next outage is warned about again."""
    caplog.set_level(logging.DEBUG, logger="taskq_redis.results_subscriber")
    redis_server = start_redis()
    opened: list[RedisBackend] = []
    backend = _backend(redis_server.url, opened)
    try:
        redis_server.stop()
        assert backend.wait([str(uuid.uuid4())], 1.5) == {}
        warnings = _subscriber_records(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings
        assert "cannot connect" in warnings[0]
        attempts = _subscriber_records(caplog, logging.DEBUG)
        assert attempts, "tried once only"  # the second attempt follows the first at once

        redis_server.start()
        meta = make_meta(result="after the outage")
        backend.store(meta)
        assert backend.wait([meta.task_id], 10) == {meta.task_id: meta}
        assert "Redis result subscriber connected again" in _subscriber_records(
            caplog, logging.INFO
        )

        redis_server.stop()
        assert backend.wait([str(uuid.uuid4())], 1.5) == {}
        warnings = _subscriber_records(caplog, logging.WARNING)
        assert len(warnings) == 2, warnings
        assert "lost its connection" in warnings[1]
    finally:
        for opened_backend in opened:
            opened_backend.close()


def test_a_server_that_never_answers_does_not_hold_a_wait_past_its_timeout() -> None:
    """The kernel completes the connection to a port nobody accepts on, and the HELLO is never
    answered: with an hour's socket timeouts, a wait of a second still ends (with nothing)."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)
    port: int = silent.getsockname()[1]
    backend = RedisBackend(
        f"redis://127.0.0.1:{port}/0",
        BackendOptions(transport_options={"socket_timeout": 3600, "socket_connect_timeout": 3600}),
    )
    got: list[dict[str, ResultMeta]] = []
    waiting = threading.Thread(target=lambda: got.append(backend.wait(["never-stored"], 1)))
    try:
        waiting.start()
        waiting.join(60)  # a minute, not the hour the socket timeouts would allow
        assert not waiting.is_alive(), "the wait outlived its timeout"
        assert got == [{}]
    finally:
        silent.close()  # ends a connection still waiting for its HELLO's answer
        waiting.join()
        backend.close()
