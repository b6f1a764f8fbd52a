"""The window beyond the prefetch: open for tasks finishing fast, shut for slow ones."""

from __future__ import annotations

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
