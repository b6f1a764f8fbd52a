"""The window beyond the prefetch: open for tasks finishing fast, shut for slow ones."""

from __future__ import annotations

from taskq.contracts import Delivery
from taskq_protocol import Envelope
from taskq_worker.fetcher import Holdings
from taskq_worker.pace import HORIZON, PER_PROCESS, PERIOD, Pace


def test_fast_tasks_open_the_window_up_to_its_cap() -> None:
    pace = Pace(2, now=0.0)
    pace.finished = 1000  # 20,000 tasks a second
    assert pace.window(PERIOD) == 2 * PER_PROCESS


def test_the_window_is_what_would_start_within_the_horizon() -> None:
    pace = Pace(4, now=0.0)
    rate = 1000.0  # tasks a second: the first measure is averaged with nothing measured
    pace.finished = int(rate * PERIOD)
    assert pace.window(PERIOD) == int(rate / 2 * HORIZON)


def test_slow_tasks_or_none_shut_it_at_once() -> None:
    pace = Pace(2, now=0.0)
    pace.finished = 1000
    assert pace.window(PERIOD) == 2 * PER_PROCESS
    pace.finished = 1  # 20 a second: nothing would start within the horizon
    assert pace.window(2 * PERIOD) == 0


def test_it_measures_once_a_period() -> None:
    pace = Pace(2, now=0.0)
    pace.finished = 1000
    assert pace.window(PERIOD / 2) is None


def test_holdings_claim_the_prefetch_plus_the_window() -> None:
    holdings = Holdings(4)
    holdings.handed_over = False
    assert holdings.claim() == 4
    holdings.taken([], 4)
    holdings.widen(6)
    assert holdings.claim() == 10
    holdings.taken([], 10)
    holdings.widen(0)
    assert holdings.claim() == 4


def test_the_fetcher_thread_fills_the_last_free_slot() -> None:
    """Waiting on queues found empty, the worker takes messages as they come until its
    prefetch is full, as Celery's does, not only a batch's worth at a time."""
    holdings = Holdings(4)
    assert holdings.claim_when_handed_over(0.0) == 4
    holdings.taken([_delivery(str(n)) for n in range(3)], 4)  # short: the queue ran dry
    assert holdings.claim_when_handed_over(0.0) == 1


def _delivery(tag: str) -> Delivery:
    return Delivery(
        queue="celery",
        envelope=Envelope.create(b"{}", content_type="application/json", content_encoding="utf-8"),
        tag=tag,
    )
