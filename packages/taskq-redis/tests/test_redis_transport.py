"""What the Redis transport does beyond the shared conformance suite: its delayed delivery,
delivery counts, give-back order, dead letters, x-expires, and surviving Redis restarts."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from taskq.contracts import QueueSpec, TransportError
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_envelope, task_id_of
from taskq_testing.waiting import wait_until

SEP = "\x06\x16"
Open = Callable[..., RedisTransport]


def ids(deliveries: list[Any]) -> list[str]:
    return [task_id_of(d) for d in deliveries]


# -- delayed delivery ----------------------------------------------------------------------------


def test_countdown_longer_than_the_visibility_timeout_runs_once(open_transport: Open) -> None:
    """Celery's Redis ETA caveat does not apply: the message waits in Redis, not in a worker."""
    consumers = [open_transport(visibility_timeout=0.2) for _ in range(3)]
    envelope = make_envelope("q")
    eta = time.time() + 0.6
    consumers[0].publish("q", envelope, eta=eta)
    seen: list[tuple[str, float]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 1.6

    def consume(consumer: RedisTransport) -> None:
        while time.monotonic() < stop_at:
            batch = consumer.fetch(["q"], 5, 0.1)
            with lock:
                seen.extend((task_id_of(d), time.time()) for d in batch)
            if batch:
                # The task outlives the visibility timeout, extended as the worker extends it.
                for _ in range(5):
                    consumer.extend(batch, 0.2)
                    time.sleep(0.08)
                consumer.ack(batch)

    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [task_id for task_id, _ in seen] == [task_id_of(envelope)]
    assert seen[0][1] >= eta - 0.05


def test_idle_fetch_wakes_when_a_delayed_message_falls_due(open_transport: Open) -> None:
    transport = open_transport()
    envelope = make_envelope("q")
    eta = time.time() + 0.3
    transport.publish("q", envelope, eta=eta)
    started = time.monotonic()
    got = transport.fetch(["q"], 10, 10.0)
    assert ids(got) == [task_id_of(envelope)]
    assert time.time() >= eta - 0.05
    assert time.monotonic() - started < 5.0, "the blocking wait ignored the due time"


def test_the_same_envelope_delayed_twice_is_delivered_twice(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport()
    envelope = make_envelope("q")
    eta = time.time() + 0.2
    transport.publish_many([("q", envelope, eta), ("q", envelope, eta)])
    assert raw.zcard(f"{prefix}_taskq.delayed.q") == 2
    assert transport.queue_length("q") == 2
    got = transport.fetch(["q"], 10, 3.0)
    got += transport.fetch(["q"], 10, 0.5)
    assert ids(got) == [task_id_of(envelope)] * 2


def test_due_messages_keep_their_priority_list(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport()
    low, high_number = make_envelope("q", priority=0), make_envelope("q", priority=7)
    transport.publish("q", high_number, eta=time.time() + 0.1)
    transport.publish("q", low, eta=time.time() + 0.1)
    time.sleep(0.15)
    # Due in the same instant: the fetch moves both, each to its priority's list.
    assert ids(transport.fetch(["q"], 10, 1.0)) == [task_id_of(low), task_id_of(high_number)]


def test_without_delayed_delivery_eta_messages_are_published_at_once(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    """Celery's own behaviour, for deployments where Celery workers also consume the queue."""
    transport = open_transport(delayed_delivery=False)
    envelope = make_envelope("q")
    transport.publish("q", envelope, eta=time.time() + 3600)
    assert raw.llen(f"{prefix}q") == 1
    assert not raw.exists(f"{prefix}_taskq.delayed.q")
    assert ids(transport.fetch(["q"], 1, 1.0)) == [task_id_of(envelope)]


# -- delivery counts, give-back order ------------------------------------------------------------


def test_delivery_counts_survive_restores_and_are_forgotten_on_ack(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport(visibility_timeout=0.2)
    envelope = make_envelope("q")
    transport.publish("q", envelope)
    deliveries = [transport.fetch(["q"], 1, 3.0)[0] for _ in range(3)]
    assert [d.deliveries for d in deliveries] == [1, 2, 3]
    delivery = deliveries[-1]
    assert raw.hget(f"{prefix}_taskq.deliveries", envelope.delivery_tag or "") == b"3"
    transport.ack([delivery])
    assert not raw.exists(f"{prefix}_taskq.deliveries")
    assert raw.hlen(f"{prefix}unacked") == 0


def test_a_first_delivery_writes_no_count(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport()
    transport.publish("q", make_envelope("q"))
    [delivery] = transport.fetch(["q"], 1, 1.0)
    assert delivery.deliveries == 1
    assert not raw.exists(f"{prefix}_taskq.deliveries")
    transport.ack([delivery])


def test_close_gives_back_in_fetch_order_at_the_head(open_transport: Open) -> None:
    worker = open_transport()
    envelopes = [make_envelope("q") for _ in range(4)]
    for envelope in envelopes:
        worker.publish("q", envelope)
    taken = worker.fetch(["q"], 3, 1.0)
    assert ids(taken) == [task_id_of(e) for e in envelopes[:3]]
    worker.close()
    again = open_transport().fetch(["q"], 10, 1.0)
    assert ids(again) == [task_id_of(e) for e in envelopes]
    assert [d.deliveries for d in again] == [2, 2, 2, 1]


def test_publish_many_keeps_each_lists_order_across_chunks(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    """A batch larger than one LPUSH chunk, over two queues, two priority steps and a delay:
    each list holds its messages in the order given, the delayed ones wait in their set."""
    transport = open_transport()
    batch: list[tuple[str, Any, float | None]] = []
    for i in range(2_500):
        queue = "q" if i % 3 else "r"
        batch.append((queue, make_envelope(queue, priority=9 if i % 7 == 0 else None), None))
    later = time.time() + 60
    batch += [("q", make_envelope("q"), later) for _ in range(1_200)]
    transport.publish_many(batch)
    assert raw.zcard(f"{prefix}_taskq.delayed.q") == 1_200
    for queue in ("q", "r"):
        sent = [env for name, env, eta in batch if name == queue and eta is None]
        fetched: list[Any] = []
        while len(fetched) < len(sent):
            fetched += transport.fetch([queue], 500, 1.0)
        # Priority step first (on Redis 0 before 9, as kombu), then FIFO within each step.
        first = [e for e in sent if e.properties.get("priority") != 9]
        last = [e for e in sent if e.properties.get("priority") == 9]
        assert ids(fetched) == [task_id_of(e) for e in first + last]
        transport.ack(fetched)


def test_reject_with_requeue_goes_to_the_tail_like_kombu(open_transport: Open) -> None:
    transport = open_transport()
    first, second = make_envelope("q"), make_envelope("q")
    transport.publish_many([("q", first, None), ("q", second, None)])
    [delivery] = transport.fetch(["q"], 1, 1.0)
    transport.reject(delivery, requeue=True)
    again = transport.fetch(["q"], 10, 1.0)
    assert ids(again) == [task_id_of(second), task_id_of(first)]
    assert [d.deliveries for d in again] == [1, 2]


def test_extend_never_shortens(open_transport: Open, raw: redis.Redis, prefix: str) -> None:
    transport = open_transport(visibility_timeout=10)
    transport.publish("q", make_envelope("q"))
    [delivery] = transport.fetch(["q"], 1, 1.0)
    transport.extend([delivery], 60)
    extended = raw.zscore(f"{prefix}unacked_index", delivery.tag)
    transport.extend([delivery], 1)
    assert raw.zscore(f"{prefix}unacked_index", delivery.tag) == extended
    assert extended is not None
    assert extended == pytest.approx(time.time() + 60 - 10, abs=5)


def test_settling_a_delivery_restored_meanwhile_does_nothing(open_transport: Open) -> None:
    slow = open_transport(visibility_timeout=0.2)
    other = open_transport(visibility_timeout=0.2)
    slow.publish("q", make_envelope("q"))
    [stale] = slow.fetch(["q"], 1, 1.0)
    [current] = other.fetch(["q"], 1, 3.0)
    assert current.deliveries == 2
    slow.ack([stale])
    slow.dead_letter(stale, "late")
    assert other.queue_length("q.dlq") == 0
    # The new holder still owns it: when it is not acked it comes back again.
    assert other.fetch(["q"], 1, 3.0)[0].deliveries == 3


def test_unreadable_messages_go_to_the_dead_letter_queue_as_they_are(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport()
    good = make_envelope("q")
    raw.lpush(f"{prefix}q", b"not json at all")
    transport.publish("q", good)
    assert ids(transport.fetch(["q"], 10, 1.0)) == [task_id_of(good)]
    assert raw.lrange(f"{prefix}q.dlq", 0, -1) == [b"not json at all"]
    assert raw.hlen(f"{prefix}unacked") == 1  # only the good one is held


def test_round_robin_rotates_the_queues_like_kombu(open_transport: Open) -> None:
    transport = open_transport(queue_order_strategy="round_robin")
    for queue in ("a", "b"):
        for _ in range(3):
            transport.publish(queue, make_envelope(queue))
    got = [transport.fetch(["a", "b"], 1, 1.0)[0].queue for _ in range(4)]
    assert got == ["a", "b", "a", "b"]


# -- x-expires -----------------------------------------------------------------------------------


def test_x_expires_sets_a_ttl_on_the_queue_lists(
    open_transport: Open, raw: redis.Redis, prefix: str
) -> None:
    transport = open_transport()
    transport.declare_queue(
        QueueSpec(
            name="reply", exchange="reply.ex", routing_key="r", arguments={"x-expires": 30_000}
        )
    )
    transport.publish("reply", make_envelope("reply", priority=9))
    assert 0 < raw.pttl(f"{prefix}reply{SEP}9") <= 30_000
    assert raw.zscore(f"{prefix}_kombu.binding_deadlines", "reply.ex") is not None


# -- threads and faults --------------------------------------------------------------------------


def test_a_blocked_fetch_does_not_hold_up_publishers(open_transport: Open) -> None:
    transport = open_transport(max_connections=2)
    got: list[Any] = []
    fetching = threading.Thread(target=lambda: got.extend(transport.fetch(["idle"], 1, 3.0)))
    fetching.start()
    time.sleep(0.1)
    for _ in range(20):  # one connection is busy blocking; these share the other
        transport.publish("busy", make_envelope("busy"))
    assert transport.queue_length("busy") == 20
    transport.publish("idle", make_envelope("idle"))
    fetching.join()
    assert len(got) == 1


def test_errors_become_transport_errors(redis_server: Any) -> None:
    transport = RedisTransport(redis_server.url, {"socket_connect_timeout": 0.5})
    transport.connect()
    redis_server.stop()
    with pytest.raises(TransportError) as raised:
        transport.publish("q", make_envelope("q"))
    assert isinstance(raised.value.__cause__, redis.RedisError)
    with pytest.raises(TransportError):
        transport.fetch(["q"], 1, 0.1)
    transport.close()


def test_survives_a_restart_between_calls(redis_server: Any) -> None:
    transport = RedisTransport(redis_server.url, {})
    transport.connect()
    transport.publish("q", make_envelope("q"))
    assert len(transport.fetch(["q"], 1, 1.0)) == 1
    redis_server.restart()  # a fresh server: no data, no scripts (NOSCRIPT on next use)
    envelope = make_envelope("q")
    transport.publish("q", envelope)
    got = transport.fetch(["q"], 1, 1.0)
    assert ids(got) == [task_id_of(envelope)]
    transport.ack(got)
    transport.close()


def test_survives_a_restart_under_a_running_fetch_loop(redis_server: Any) -> None:
    transport = RedisTransport(redis_server.url, {"socket_connect_timeout": 0.5})
    transport.connect()
    received: list[str] = []
    errors: list[TransportError] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                batch = transport.fetch(["q"], 10, 0.2)
            except TransportError as exc:
                errors.append(exc)
                time.sleep(0.05)
                continue
            received.extend(ids(batch))
            transport.ack(batch)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        before = make_envelope("q")
        transport.publish("q", before)
        wait_until(lambda: received, 3.0, message="the first message")
        redis_server.restart(down_for=0.5)
        after = make_envelope("q")
        wait_until(lambda: _try_publish(transport, after), 5.0, message="publishing again")
        wait_until(lambda: len(received) == 2, 5.0, message="the message after the restart")
    finally:
        stop.set()
        worker.join()
        transport.close()
    assert received == [task_id_of(before), task_id_of(after)]
    assert errors, "the loop never saw the server go away"


def _try_publish(transport: RedisTransport, envelope: Any) -> bool:
    try:
        transport.publish("q", envelope)
    except TransportError:
        return False
    return True


def test_subscribers_resubscribe_after_a_restart(redis_server: Any) -> None:
    listener = RedisTransport(redis_server.url, {})
    sender = RedisTransport(redis_server.url, {})
    inbox: list[str] = []
    listener.subscribe("pidbox", lambda envelope: inbox.append(task_id_of(envelope)))
    redis_server.restart(down_for=0.3)
    envelope = make_envelope("pidbox")

    def delivered() -> bool:
        # At most once: broadcasts sent before the listener is back are lost; send again.
        if not inbox:
            with contextlib.suppress(TransportError):
                sender.broadcast("pidbox", envelope)
            time.sleep(0.05)
        return bool(inbox)

    wait_until(delivered, 10.0, message="a broadcast after the restart")
    assert set(inbox) == {task_id_of(envelope)}
    listener.close()
    sender.close()


def test_many_consumers_and_restores_lose_nothing(open_transport: Open) -> None:
    """Three consumers, a short visibility timeout and half the deliveries abandoned: every
    message is acked in the end and none is lost."""
    consumers = [open_transport(visibility_timeout=0.2) for _ in range(3)]
    envelopes = [make_envelope("q") for _ in range(60)]
    consumers[0].publish_many([("q", e, None) for e in envelopes])
    acked: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + 10

    def consume(index: int) -> None:
        consumer = consumers[index]
        abandon = index == 0
        while time.monotonic() < stop_at:
            with lock:
                if len(acked) == len(envelopes):
                    return
            batch = consumer.fetch(["q"], 4, 0.1)
            if abandon and batch:
                abandon = False  # this worker "crashes" once, holding a batch
                continue
            with lock:
                acked.update(task_id_of(d) for d in batch)
            consumer.ack(batch)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(acked) == {task_id_of(e) for e in envelopes}


def test_a_forked_child_publishes_without_touching_the_parents_deliveries(
    open_transport: Open,
) -> None:
    """A prefork child inherits the transport: its publishes work, and even a close() in the
    child gives back nothing the parent holds."""
    import os

    parent = open_transport()
    parent.subscribe("events", lambda envelope: None)
    parent.publish("q", make_envelope("q"))
    [held] = parent.fetch(["q"], 1, 1.0)
    from_child = make_envelope("q")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            parent.publish("q", from_child)
            parent.close()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ids(parent.fetch(["q"], 10, 1.0)) == [task_id_of(from_child)]
    parent.ack([held])


def test_brpop_serves_idle_fetches_on_servers_before_redis_7(open_transport: Open) -> None:
    transport = open_transport()
    transport._blmpop = False  # pyright: ignore[reportPrivateUsage] - as connect() finds on 6.2
    envelope = make_envelope("q")
    timer = threading.Timer(0.2, transport.publish, ("q", envelope))
    timer.start()
    try:
        got = transport.fetch(["q"], 10, 3.0)
    finally:
        timer.join()
    assert ids(got) == [task_id_of(envelope)]
