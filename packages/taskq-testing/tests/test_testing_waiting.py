"""wait_until: returns the first truthy value, fails as an assertion at its deadline."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from taskq_testing.waiting import WaitTimeout, wait_until


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", 5) == "ready"


def test_sees_what_another_thread_does() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    started = time.monotonic()
    assert wait_until(done.is_set, 5) is True
    assert time.monotonic() - started < 1


def test_fails_as_an_assertion_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(
        WaitTimeout, match=r"the queue drained did not hold within 0.2s \(last: 0\)"
    ):
        wait_until(lambda: 0, 0.2, message="the queue drained")
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1
    assert issubclass(WaitTimeout, AssertionError)


def test_checks_once_more_at_the_deadline() -> None:
    deadline = time.monotonic() + 0.1
    assert wait_until(lambda: time.monotonic() >= deadline, 0.1, interval=10) is True


def test_zero_timeout_checks_once() -> None:
    calls: list[int] = []
    with pytest.raises(WaitTimeout):
        wait_until(lambda: calls.append(1), 0)
    assert calls == [1]


@pytest.mark.parametrize(("timeout", "interval"), [(-1, 0.01), (1, 0), (1, -0.5)])
def test_rejects_bad_arguments(timeout: float, interval: float) -> None:
    with pytest.raises(ValueError, match="timeout must be >= 0 and interval > 0"):
        wait_until(lambda: True, timeout, interval=interval)
