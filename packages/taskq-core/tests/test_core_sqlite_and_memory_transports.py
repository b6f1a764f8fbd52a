"""The semantics memory:// and sqlite:// share, run against both (Dramatiq's habit).

Each test builds its own broker: a fresh SQLite file, or a fresh memory broker name.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskq.contracts import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    QueueSpec,
    Transport,
    dead_letter_queue,
)
from taskq.transports.memory import MemoryTransport
from taskq.transports.sqlite import SQLiteTransport
from taskq_protocol import Envelope

Opener = Callable[..., Transport]


def envelope(name: str, queue: str = "q", priority: int | None = None) -> Envelope:
    """A message told apart by its ``id`` header."""
    return Envelope.create(
        f'[[], {{}}, {{"name": "{name}"}}]'.encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers={"id": name, "task": "tests.noop"},
        routing_key=queue,
        priority=priority,
    )


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.envelope.headers["id"] for d in deliveries]


@pytest.fixture(params=["sqlite", "memory"])
def opener(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Opener]:
    """Builds connected transports on one broker; all are closed after the test."""
    url = (
        f"sqlite:///{tmp_path}/broker.db"
        if request.param == "sqlite"
        else f"memory://{uuid.uuid4()}"
    )
    kind = SQLiteTransport if request.param == "sqlite" else MemoryTransport
    opened: list[Transport] = []

    def open_(**options: Any) -> Transport:
        transport = kind(url, options)
        transport.connect()
        opened.append(transport)
        return transport

    yield open_
    for transport in opened:
        transport.close()


@pytest.fixture
def transport(opener: Opener) -> Transport:
    return opener()


def test_is_a_transport(transport: Transport) -> None:
    assert isinstance(transport, Transport)


def test_what_comes_out_equals_what_went_in(transport: Transport) -> None:
    sent = envelope("a")
    sent.headers["x-nested"] = {"list": [1, 2.5, None], "text": "caf\u00e9"}
    sent.properties["reply_to"] = "reply"
    kept = copy.deepcopy(sent)
    transport.publish("q", sent)
    [delivery] = transport.fetch(["q"], 10, 1)
    assert delivery.envelope == kept
    assert delivery.envelope.encode() == kept.encode()
    assert (delivery.queue, delivery.deliveries, delivery.redelivered) == ("q", 1, False)
    assert sent == kept, "publish must not change the caller's envelope"


def test_higher_priority_first_then_publish_order(transport: Transport) -> None:
    for name, priority in [("p0-a", None), ("p9", 9), ("p5", 5), ("p0-b", 0), ("neg", -1)]:
        transport.publish("q", envelope(name, priority=priority))
    transport.publish_many([("q", envelope("p5-b", priority=5), None)])
    got = [ids(transport.fetch(["q"], 1, 0)) for _ in range(6)]
    assert got == [["p9"], ["p5"], ["p5-b"], ["p0-a"], ["p0-b"], ["neg"]]


def test_a_batch_keeps_the_order(transport: Transport) -> None:
    transport.publish_many([("q", envelope(f"m{i}", priority=i % 2), None) for i in range(6)])
    assert ids(transport.fetch(["q"], 10, 0)) == ["m1", "m3", "m5", "m0", "m2", "m4"]


def test_earlier_queues_first_within_one_fetch(transport: Transport) -> None:
    transport.publish_many([("low", envelope("l1"), None), ("high", envelope("h1"), None)])
    transport.publish("low", envelope("l2"))
    got = transport.fetch(["high", "low", "high"], 10, 0)
    assert ids(got) == ["h1", "l1", "l2"]
    assert [d.queue for d in got] == ["high", "low", "low"]
    assert len(transport.fetch(["x"], 1, 0)) == 0


def test_fetch_takes_at_most_limit(transport: Transport) -> None:
    transport.publish_many([("q", envelope(f"m{i}"), None) for i in range(5)])
    assert ids(transport.fetch(["q"], 2, 0)) == ["m0", "m1"]
    assert ids(transport.fetch(["q"], 10, 0)) == ["m2", "m3", "m4"]


def test_a_delayed_message_is_not_delivered_early(transport: Transport) -> None:
    eta = time.time() + 0.3
    transport.publish("q", envelope("later"), eta=eta)
    transport.publish("q", envelope("now"))
    assert ids(transport.fetch(["q"], 10, 0)) == ["now"]
    assert transport.queue_length("q") == 1
    got = transport.fetch(["q"], 10, 5)
    assert ids(got) == ["later"]
    assert time.time() >= eta
    assert transport.fetch(["q"], 10, 0.1) == [], "delivered twice"


def test_a_due_message_takes_its_place_by_publish_order(transport: Transport) -> None:
    transport.publish("q", envelope("delayed"), eta=time.time() + 0.15)
    transport.publish("q", envelope("ready"))
    time.sleep(0.2)
    assert ids(transport.fetch(["q"], 10, 0)) == ["delayed", "ready"]


def test_unacked_delivery_comes_back_after_the_visibility_timeout(opener: Opener) -> None:
    first, second = opener(visibility_timeout=0.2), opener(visibility_timeout=0.2)
    first.publish("q", envelope("m"))
    [delivery] = first.fetch(["q"], 10, 0)
    assert second.fetch(["q"], 10, 0.05) == []
    assert first.queue_length("q") == 0, "a held delivery is not waiting"
    time.sleep(0.25)
    assert first.queue_length("q") == 1, "an expired delivery is waiting again"
    [again] = second.fetch(["q"], 10, 1)
    assert (ids([again]), again.deliveries, again.redelivered) == (["m"], 2, True)
    assert again.tag != delivery.tag
    # The first consumer's late ack is stale: the message now belongs to the second.
    first.ack([delivery])
    first.dead_letter(delivery, "stale")
    first.extend([delivery], 60)
    first.reject(delivery, requeue=True)
    assert first.queue_length(dead_letter_queue("q")) == 0
    second.ack([again])
    assert second.fetch(["q"], 10, 0.3) == []


def test_an_expired_delivery_can_still_be_acked_until_taken_again(opener: Opener) -> None:
    transport = opener(visibility_timeout=0.1)
    transport.publish("q", envelope("m"))
    [delivery] = transport.fetch(["q"], 10, 0)
    time.sleep(0.15)
    transport.ack([delivery])
    assert transport.fetch(["q"], 10, 0.05) == []
    assert transport.queue_length("q") == 0


def test_extend_keeps_it_hidden_and_never_shortens(opener: Opener) -> None:
    transport = opener(visibility_timeout=0.3)
    transport.publish_many([("q", envelope("a"), None), ("q", envelope("b"), None)])
    a, b = transport.fetch(["q"], 2, 0)
    transport.extend([a], 0.6)
    transport.extend([b], 0.01)  # shorter than what is left: no effect
    time.sleep(0.35)
    [again] = transport.fetch(["q"], 10, 0)
    assert ids([again]) == ["b"]
    transport.ack([again])
    time.sleep(0.3)
    assert ids(transport.fetch(["q"], 10, 0)) == ["a"]


def test_extend_hides_an_expired_delivery_again(opener: Opener) -> None:
    transport = opener(visibility_timeout=0.1)
    transport.publish("q", envelope("m"))
    [delivery] = transport.fetch(["q"], 10, 0)
    time.sleep(0.15)
    transport.extend([delivery], 60)
    assert transport.fetch(["q"], 10, 0) == []
    assert transport.queue_length("q") == 0


def test_requeue_returns_it_to_its_place_and_keeps_the_count(transport: Transport) -> None:
    transport.publish_many([("q", envelope("first"), None), ("q", envelope("second"), None)])
    [first] = transport.fetch(["q"], 1, 0)
    transport.reject(first, requeue=True)
    got = transport.fetch(["q"], 10, 0)
    assert ids(got) == ["first", "second"]
    assert [d.deliveries for d in got] == [2, 1]
    transport.reject(got[0], requeue=True)
    [again] = transport.fetch(["q"], 1, 0)
    assert again.deliveries == 3


def test_reject_without_requeue_deletes(transport: Transport) -> None:
    transport.publish("q", envelope("m"))
    [delivery] = transport.fetch(["q"], 10, 0)
    transport.reject(delivery, requeue=False)
    assert transport.queue_length("q") == 0
    transport.close()
    assert transport.fetch(["q"], 10, 0) == [], "close must not bring back a rejected message"


def test_dead_letter_moves_it_with_the_reason(transport: Transport) -> None:
    sent = envelope("m", priority=3)
    sent.headers["x-keep"] = "me"
    transport.publish("q", sent)
    [delivery] = transport.fetch(["q"], 10, 0)
    transport.dead_letter(delivery, "bad \N{SNAKE}")
    assert transport.queue_length("q") == 0
    dlq = dead_letter_queue("q")
    [dead] = transport.fetch([dlq], 10, 0)
    assert dead.queue == dlq
    assert dead.deliveries == 1
    assert dead.envelope.headers == {**sent.headers, DEAD_LETTER_REASON_HEADER: "bad \N{SNAKE}"}
    assert (dead.envelope.body, dead.envelope.properties) == (sent.body, sent.properties)
    transport.close()
    assert transport.fetch(["q"], 10, 0) == []


def test_length_and_purge_count_waiting_messages_only(opener: Opener) -> None:
    transport = opener(visibility_timeout=0.15)
    transport.publish_many([("q", envelope(f"m{i}"), None) for i in range(3)])
    transport.publish("q", envelope("delayed"), eta=time.time() + 3600)
    transport.publish("other", envelope("o"))
    held, expiring = transport.fetch(["q"], 2, 0)
    transport.extend([held], 60)
    assert transport.queue_length("q") == 2
    time.sleep(0.2)  # ``expiring`` is waiting again; ``held`` is not
    assert transport.queue_length("q") == 3
    assert transport.purge("q") == 3
    assert transport.queue_length("q") == 0
    assert transport.purge("q") == 0
    assert transport.queue_length("other") == 1
    transport.ack([held])
    transport.ack([expiring])  # purged meanwhile: nothing to do
    assert transport.fetch(["q"], 10, 0) == []
    assert transport.queue_length("nothing-here") == 0


def test_close_returns_this_instances_deliveries_only(opener: Opener) -> None:
    worker, other = opener(), opener()
    worker.publish_many([("q", envelope(f"m{i}"), None) for i in range(3)])
    mine = worker.fetch(["q"], 2, 0)
    theirs = other.fetch(["q"], 1, 0)
    worker.ack(mine[:1])
    worker.close()
    back = other.fetch(["q"], 10, 0)
    assert ids(back) == ["m1"]
    assert back[0].deliveries == 2
    assert ids(theirs) == ["m2"]


def test_a_closed_transport_can_be_used_again(transport: Transport) -> None:
    transport.publish("q", envelope("m"))
    transport.close()
    transport.connect()
    assert ids(transport.fetch(["q"], 1, 0)) == ["m"]


def test_fetch_wakes_when_another_thread_publishes(transport: Transport) -> None:
    timer = threading.Timer(0.1, transport.publish, ("q", envelope("m")))
    started = time.monotonic()
    timer.start()
    got = transport.fetch(["q"], 10, 5)
    timer.join()
    assert ids(got) == ["m"]
    assert time.monotonic() - started < 1


def test_fetch_waits_its_timeout_when_idle(transport: Transport) -> None:
    started = time.monotonic()
    assert transport.fetch(["q"], 10, 0.2) == []
    assert 0.19 <= time.monotonic() - started < 1


def test_threads_claim_each_message_once(opener: Opener) -> None:
    shared = opener()
    shared.publish_many([("q", envelope(f"m{i}"), None) for i in range(300)])
    seen: list[str] = []
    lock = threading.Lock()

    def consume(transport: Transport) -> None:
        while batch := transport.fetch(["q"], 7, 0.05):
            with lock:
                seen.extend(ids(batch))
            transport.ack(batch)

    threads = [threading.Thread(target=consume, args=(t,)) for t in [shared, shared, opener()]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(f"m{i}" for i in range(300))


def test_broadcast_reaches_every_subscriber_of_the_exchange(opener: Opener) -> None:
    one, two = opener(), opener()
    inboxes: list[list[Envelope]] = [[], [], []]
    one.subscribe("ex", inboxes[0].append)
    stop = two.subscribe("ex", inboxes[1].append)
    two.subscribe("other", inboxes[2].append)
    sent = envelope("b")
    one.broadcast("ex", sent)
    _wait_for(lambda: all(inboxes[:2]))
    assert inboxes[:2] == [[sent], [sent]]
    stop()
    stop()  # twice is fine
    one.broadcast("ex", envelope("c"))
    _wait_for(lambda: len(inboxes[0]) == 2)
    time.sleep(0.1)
    assert ids_of(inboxes[0]) == ["b", "c"]
    assert ids_of(inboxes[1]) == ["b"]
    assert inboxes[2] == []


def test_broadcasts_before_subscribing_are_not_replayed(opener: Opener) -> None:
    transport = opener()
    transport.broadcast("ex", envelope("before"))
    inbox: list[Envelope] = []
    transport.subscribe("ex", inbox.append)
    transport.broadcast("ex", envelope("after"))
    _wait_for(lambda: inbox)
    time.sleep(0.1)
    assert ids_of(inbox) == ["after"]


def test_a_failing_subscriber_does_not_stop_the_others(opener: Opener) -> None:
    transport = opener()
    inbox: list[Envelope] = []

    def broken(_: Envelope) -> None:
        raise RuntimeError("subscriber bug")

    transport.subscribe("ex", broken)
    transport.subscribe("ex", inbox.append)
    transport.broadcast("ex", envelope("one"))
    transport.broadcast("ex", envelope("two"))
    _wait_for(lambda: len(inbox) == 2)
    assert ids_of(inbox) == ["one", "two"]


def test_close_ends_subscriptions(opener: Opener) -> None:
    listener, sender = opener(), opener()
    inbox: list[Envelope] = []
    listener.subscribe("ex", inbox.append)
    listener.close()
    sender.broadcast("ex", envelope("m"))
    time.sleep(0.15)
    assert inbox == []


def test_declare_queue_accepts_any_spec(transport: Transport) -> None:
    transport.declare_queue(
        QueueSpec(name="q", max_priority=255, arguments={"x-max-priority": 255})
    )
    with pytest.raises(ValueError, match="queue name"):
        transport.declare_queue(QueueSpec(name=""))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.fetch(["q"], 0, 0), "limit"),
        (lambda t: t.fetch(["q"], True, 0), "limit"),
        (lambda t: t.fetch([], 1, 0), "at least one queue"),
        (lambda t: t.fetch("q", 1, 0), "not the string"),
        (lambda t: t.publish("", envelope("m")), "queue name"),
        (lambda t: t.publish("q", envelope("m"), eta=float("nan")), "eta"),
        (lambda t: t.publish("q", envelope("m"), eta="soon"), "eta"),
        (lambda t: t.broadcast("", envelope("m")), "exchange name"),
        (lambda t: t.subscribe("", print), "exchange name"),
        (lambda t: t.extend([], 0), "seconds"),
        (lambda t: t.extend([], float("inf")), "seconds"),
        (lambda t: t.dead_letter(_delivery_of(t), 42), "reason"),
        (lambda t: t.ack([Delivery("q", envelope("m"), "tag")]), "did not come from"),
    ],
)
def test_bad_arguments_are_value_errors(
    transport: Transport, call: Callable[[Transport], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(transport)


def _delivery_of(transport: Transport) -> Delivery:
    transport.publish("q", envelope("m"))
    return transport.fetch(["q"], 1, 0)[0]


def test_a_delivery_from_the_other_kind_of_transport_is_refused(tmp_path: Any) -> None:
    sqlite = SQLiteTransport(f"sqlite:///{tmp_path}/b.db", {})
    memory = MemoryTransport(f"memory://{uuid.uuid4()}", {})
    for source, target in [(sqlite, memory), (memory, sqlite)]:
        delivery = _delivery_of(source)
        with pytest.raises(ValueError, match="did not come from"):
            target.reject(delivery, requeue=True)
        source.close()


def ids_of(envelopes: list[Envelope]) -> list[str]:
    return [e.headers["id"] for e in envelopes]


def _wait_for(condition: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
