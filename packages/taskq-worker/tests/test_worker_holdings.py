"""The prefetch bookkeeping two fetching threads share: claims, hand-over, room."""

from __future__ import annotations

import threading
import time

from taskq.contracts import Delivery
from taskq_protocol import Envelope
from taskq_worker.fetcher import Holdings


def _deliveries(count: int, start: int = 0) -> list[Delivery]:
    envelope = Envelope.create(b"[]", content_type="application/json", content_encoding="utf-8")
    return [
        Delivery(queue="q", envelope=envelope, tag=f"t{i}") for i in range(start, start + count)
    ]


def test_a_claim_takes_the_room_and_a_short_fetch_gives_the_rest_back() -> None:
    holdings = Holdings(8)
    assert holdings.claim() == 8
    assert holdings.claim() == 0, "claimed room is nobody else's"
    holdings.taken(_deliveries(3), 8)
    assert holdings.count == 3, "what is held, not what was claimed"
    assert len(holdings.unacked()) == 3
    assert holdings.claim() == 5


def test_room_is_claimed_a_batch_at_a_time() -> None:
    holdings = Holdings(8)
    holdings.taken(_deliveries(6), holdings.claim())
    assert holdings.claim() == 0, "2 free: less than half the prefetch"
    holdings.done(2)
    assert holdings.claim() == 4


def test_a_full_fetch_hands_fetching_back_to_the_consumer() -> None:
    holdings = Holdings(4)
    assert holdings.handed_over, "at start the fetcher thread waits for messages"
    holdings.taken(_deliveries(1), holdings.claim())
    assert holdings.handed_over, "a short fetch: the queues are empty"
    claimed = holdings.claim()
    assert claimed == 3
    holdings.taken(_deliveries(3, start=1), claimed)
    assert not holdings.handed_over, "a full one: more are likely waiting"
    holdings.hand_over()
    assert holdings.handed_over


def test_the_fetcher_thread_claims_only_once_handed_over() -> None:
    holdings = Holdings(4)
    holdings.taken(_deliveries(4), holdings.claim())  # full: the consumer fetches
    holdings.done(2)
    assert holdings.claim_when_handed_over(0.05) == 0
    claimed: list[int] = []
    waiter = threading.Thread(target=lambda: claimed.append(holdings.claim_when_handed_over(5)))
    waiter.start()
    time.sleep(0.05)
    assert claimed == []
    holdings.hand_over()
    waiter.join(5)
    assert claimed == [2]


def test_the_fetcher_thread_wakes_when_room_appears() -> None:
    """Waiting on empty queues, it fetches for any room (the prefetch fills up as messages
    trickle in, as Celery's does); only the consumer waits for a batch's worth."""
    holdings = Holdings(4)
    holdings.taken(_deliveries(4), holdings.claim())
    holdings.hand_over()
    claimed: list[int] = []
    waiter = threading.Thread(target=lambda: claimed.append(holdings.claim_when_handed_over(5)))
    waiter.start()
    time.sleep(0.05)
    assert claimed == [], "no room"
    started = time.monotonic()
    holdings.done()
    waiter.join(5)
    assert claimed == [1]
    assert time.monotonic() - started < 1.0, "woken, not timed out"


def test_closing_wakes_the_fetcher_thread_with_nothing_claimed() -> None:
    holdings = Holdings(4)
    holdings.taken(_deliveries(4), holdings.claim())
    claimed: list[int] = []
    waiter = threading.Thread(target=lambda: claimed.append(holdings.claim_when_handed_over(5)))
    waiter.start()
    holdings.close()
    waiter.join(5)
    assert claimed == [0]
    assert holdings.claim() == 0


def test_closing_from_a_signal_handler_that_interrupted_the_lock_holder() -> None:
    """The shutdown signal's handler runs on the main thread, perhaps the consumer's, perhaps
    while it holds the holdings' lock: closing must not wait for itself."""
    holdings = Holdings(4)

    def interrupted() -> None:
        with holdings._cond:  # pyright: ignore[reportPrivateUsage]  (interrupted in here)
            holdings.close()

    thread = threading.Thread(target=interrupted, daemon=True)
    thread.start()
    thread.join(2)
    assert not thread.is_alive(), "close() waited for the lock its own thread holds"
    assert holdings.closed
