"""run_in_threads: real concurrency, results in order, errors surfaced in the test's thread."""

from __future__ import annotations

import threading

import pytest

from taskq_testing.concurrency import run_in_threads


def test_results_come_back_in_index_order() -> None:
    assert run_in_threads(lambda i: i * i, 5) == [0, 1, 4, 9, 16]


def test_every_thread_runs_at_once() -> None:
    # Each call waits for all the others: this only returns if all run at the same time.
    meeting = threading.Barrier(4)
    names = run_in_threads(lambda _: (meeting.wait(5), threading.current_thread().name)[1], 4)
    assert len(set(names)) == 4
    assert threading.current_thread().name not in names


def test_an_error_in_a_thread_is_raised_here() -> None:
    def work(index: int) -> int:
        if index in (1, 2):
            raise KeyError(f"thread {index}")
        return index

    with pytest.raises(KeyError, match="thread 1"):
        run_in_threads(work, 3)


def test_a_failed_assertion_in_a_thread_fails_the_test() -> None:
    def work(index: int) -> None:
        assert index != 0, "checked in a thread"

    with pytest.raises(AssertionError, match="checked in a thread"):
        run_in_threads(work, 2)


def test_a_hung_thread_fails_after_the_timeout() -> None:
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match=r"still running after 0\.2s"):
            run_in_threads(lambda _: release.wait(10), 1, timeout=0.2)
    finally:
        release.set()


def test_needs_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        run_in_threads(lambda i: i, 0)
