"""How an idle fetch wakes: a taskq publish's token lets the fetch script take the message
in the same round trip (it is never popped outside a script), a message pushed as Celery
pushes it is still taken and recorded, and a burst never exceeds the fetch's limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from taskq.contracts import Delivery
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until

Open = Callable[..., RedisTransport]


class BlockedFetch:
    """A fetch running in a thread, started once the consumer is known to be blocked."""

    def __init__(self, transport: RedisTransport, queues: list[str], limit: int) -> None:
        self.result: list[Delivery] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(transport, queues, limit), daemon=True
        )
        self._thread.start()

    def _run(self, transport: RedisTransport, queues: list[str], limit: int) -> None:
        try:
            self.result = transport.fetch(queues, limit, 30)
        except BaseException as exc:
            self.error = exc

    def join(self) -> list[Delivery]:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the fetch did not return"
        if self.error is not None:
            raise self.error
        return self.result


def wait_blocked(raw: redis.Redis, name: str) -> None:
    def blocked() -> bool:
        clients: list[dict[str, Any]] = raw.client_list()
        return any(c.get("name") == name and c.get("cmd") in ("blmpop", "brpop") for c in clients)

    wait_until(blocked, 30, message=f"client {name} blocked")


@pytest.mark.parametrize("blmpop", [True, False], ids=["BLMPOP", "BRPOP"])
def test_a_taskq_publish_wakes_the_fetch_without_a_pop_outside_the_script(
    open_transport: Open, raw: redis.Redis, unique_name: str, blmpop: bool
) -> None:
    consumer = open_transport(client_name=unique_name)
    consumer._blmpop = blmpop  # pyright: ignore[reportPrivateUsage] - False as on Redis 6.2
    producer = open_transport()
    popped: list[object] = []

    def record_popped(*args: object) -> object:
        popped.append(args)
        raise AssertionError("the message was popped outside the fetch script")

    consumer._record_popped = record_popped  # type: ignore[method-assign]
    fetch = BlockedFetch(consumer, ["q"], 4)
    wait_blocked(raw, unique_name)
    envelope = make_envelope("q")
    producer.publish("q", envelope)
    deliveries = fetch.join()
    assert [task_id_of(d) for d in deliveries] == [task_id_of(envelope)]
    assert popped == []
    # Recorded the way kombu records it, with a delivery time from the server's clock.
    tag = deliveries[0].tag
    assert raw.hexists(f"{unique_name}:unacked", tag)
    score = raw.zscore(f"{unique_name}:unacked_index", tag)
    assert score is not None
    assert abs(score - time.time()) < 600
    consumer.ack(deliveries)
    assert raw.hlen(f"{unique_name}:unacked") == 0


@pytest.mark.parametrize("blmpop", [True, False], ids=["BLMPOP", "BRPOP"])
def test_a_message_pushed_as_celery_pushes_it_wakes_the_fetch_too(
    open_transport: Open, raw: redis.Redis, unique_name: str, blmpop: bool
) -> None:
    consumer = open_transport(client_name=unique_name)
    consumer._blmpop = blmpop  # pyright: ignore[reportPrivateUsage] - False as on Redis 6.2
    fetch = BlockedFetch(consumer, ["other", "q"], 4)
    wait_blocked(raw, unique_name)
    envelope = make_envelope("q")
    raw.lpush(f"{unique_name}:q", envelope.encode())  # kombu's _put: a bare LPUSH
    deliveries = fetch.join()
    assert [(d.queue, task_id_of(d), d.deliveries) for d in deliveries] == [
        ("q", task_id_of(envelope), 1)
    ]
    assert raw.hexists(f"{unique_name}:unacked", deliveries[0].tag)


def test_a_burst_pushed_at_once_is_served_oldest_first_within_the_limit(
    open_transport: Open, raw: redis.Redis, unique_name: str
) -> None:
    consumer = open_transport(client_name=unique_name)
    fetch = BlockedFetch(consumer, ["q"], 2)
    wait_blocked(raw, unique_name)
    envelopes = [make_envelope("q") for _ in range(5)]
    # One LPUSH of five: the blocking pop takes two, the script queued behind it two more.
    raw.lpush(f"{unique_name}:q", *(e.encode() for e in envelopes))
    first = fetch.join()
    assert [task_id_of(d) for d in first] == [task_id_of(e) for e in envelopes[:2]]
    rest = consumer.fetch(["q"], 10, 5)
    assert [task_id_of(d) for d in rest] == [task_id_of(e) for e in envelopes[2:]]
    assert all(d.deliveries == 1 for d in [*first, *rest])
    assert raw.hlen(f"{unique_name}:unacked") == 5
    consumer.ack([*first, *rest])
    assert raw.zcard(f"{unique_name}:unacked_index") == 0


def test_the_wake_up_list_holds_one_token_at_most_and_goes_when_drained(
    open_transport: Open, raw: redis.Redis, unique_name: str
) -> None:
    transport = open_transport()
    wake = f"{unique_name}:_taskq.wake.q"
    assert transport.fetch(["q"], 1, 0) == []  # an idle consumer: publishes now wake it
    assert raw.exists(f"{unique_name}:_taskq.waiting.q")
    for _ in range(20):
        transport.publish("q", make_envelope("q"))
    transport.publish_many([("q", make_envelope("q"), None) for _ in range(20)])
    assert raw.llen(wake) == 1
    assert raw.llen(f"{unique_name}:q") == 40
    taken = transport.fetch(["q"], 100, 5)
    assert len(taken) == 40
    assert not raw.exists(wake)
    transport.ack(taken)


def test_with_no_taskq_consumer_waiting_a_publish_writes_only_the_message(
    open_transport: Open, raw: redis.Redis, unique_name: str, prefix: str
) -> None:
    transport = open_transport()
    transport.publish("q", make_envelope("q"))
    transport.publish_many([("q", make_envelope("q"), None), ("r", make_envelope("r"), None)])
    keys = sorted(k.decode() for k in raw.scan_iter(match=prefix + "*", count=10_000))
    assert keys == [f"{prefix}q", f"{prefix}r"]


def test_an_empty_wake_up_only_costs_a_round_trip(
    open_transport: Open, raw: redis.Redis, unique_name: str
) -> None:
    consumer = open_transport(client_name=unique_name)
    fetch = BlockedFetch(consumer, ["q"], 1)
    wait_blocked(raw, unique_name)
    raw.lpush(f"{unique_name}:_taskq.wake.q", b"1")  # a token whose message someone else took
    wait_blocked(raw, unique_name)
    envelope = make_envelope("q")
    open_transport().publish("q", envelope)
    assert [task_id_of(d) for d in fetch.join()] == [task_id_of(envelope)]


@pytest.mark.parametrize("confirm_publish", [False, True], ids=["posted", "confirmed"])
def test_a_single_publish_survives_a_flushed_script_cache_and_a_dropped_connection(
    redis_server: Any, confirm_publish: bool
) -> None:
    """The direct publish path loads its script again on NOSCRIPT and reconnects, whether it
    waits for each reply or reads them later (``flush``)."""
    transport = RedisTransport(redis_server.url, {"confirm_publish": confirm_publish})
    transport.connect()
    admin = redis.Redis.from_url(redis_server.url)
    try:
        envelopes = [make_envelope("q") for _ in range(3)]
        transport.publish("q", envelopes[0])
        admin.script_flush()
        transport.publish("q", envelopes[1])
        admin.client_kill_filter(_type="normal", skipme=True)
        transport.publish("q", envelopes[2])
        transport.flush()
        queued = admin.lrange("q", 0, -1)
        assert queued == [e.encode() for e in reversed(envelopes)]
        taken = transport.fetch(["q"], 3, 5)
        assert [task_id_of(d) for d in taken] == [task_id_of(e) for e in envelopes]
    finally:
        transport.close()
        admin.close()
