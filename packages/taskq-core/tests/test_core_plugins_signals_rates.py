"""Plugin lookup, signals and rate parsing: the small pieces the app stands on."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from taskq.exceptions import PluginNotFound
from taskq.plugins import TRANSPORTS, PluginGroup, scheme_of
from taskq.rates import parse_rate
from taskq.signals import Signal


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis://localhost:6379/0", "redis"),
        ("sqlite:///taskq.sqlite3", "sqlite"),
        ("db+postgresql://u@h/db", "db"),
        ("SQS://", "sqs"),
        ("memory", "memory"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


def test_builtin_transports_are_found_through_entry_points() -> None:
    assert {"memory", "sqlite"} <= set(TRANSPORTS.names())


def test_unknown_plugin_suggests_and_lists() -> None:
    with pytest.raises(PluginNotFound) as info:
        TRANSPORTS.load("sqlit")
    message = str(info.value)
    assert "no transport named 'sqlit'" in message
    assert "Did you mean 'sqlite'?" in message
    assert "Installed:" in message


def test_registered_plugins_win_and_are_cached() -> None:
    group = PluginGroup("taskq.test-only-group", "thing")
    sentinel = object()
    group.register("x", sentinel)
    assert group.load("x") is sentinel
    assert group.names() == ["x"]
    with pytest.raises(PluginNotFound, match="Installed: x"):
        group.load("y")


@pytest.mark.parametrize(
    ("rate", "per_second"),
    [("10/s", 10.0), ("120/m", 2.0), ("3600/h", 1.0), (5, 5.0), ("7", 7.0), (None, None),
     ("0/s", None), (0, None), ("2.5/s", 2.5)],
)  # fmt: skip
def test_rates(rate: Any, per_second: float | None) -> None:
    assert parse_rate(rate) == per_second


@pytest.mark.parametrize("rate", ["ten/s", "10/d", -1, True, [1]])
def test_bad_rates(rate: Any) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(rate)


def test_signal_calls_receivers_with_sender_filter() -> None:
    sig = Signal("test")
    seen: list[tuple[Any, Any]] = []

    @sig.connect
    def everything(sender: Any = None, **kwargs: Any) -> str:
        seen.append(("all", sender))
        return "a"

    @sig.connect(sender="only-this")
    def filtered(sender: Any = None, **kwargs: Any) -> None:
        seen.append(("filtered", sender))

    responses = sig.send(sender="other", x=1)
    assert seen == [("all", "other")]
    assert responses == [(everything, "a")]
    sig.send(sender="only-this")
    assert ("filtered", "only-this") in seen
    assert sig.disconnect(everything)
    assert sig.receivers == [filtered]


def test_a_raising_receiver_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    sig = Signal("robust")
    calls: list[str] = []

    def bad(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    def good(**kwargs: Any) -> None:
        calls.append("good")

    sig.connect(bad)
    sig.connect(good)
    results = sig.send(sender=None)
    assert calls == ["good"]
    assert isinstance(results[0][1], RuntimeError)
    assert "boom" in caplog.text


def test_receivers_are_weak_unless_asked() -> None:
    sig = Signal("weak")

    class Listener:
        def __init__(self) -> None:
            self.calls = 0

        def on(self, **kwargs: Any) -> None:
            self.calls += 1

    weak, strong = Listener(), Listener()
    sig.connect(weak.on)
    sig.connect(strong.on, weak=False)
    sig.send()
    assert (weak.calls, strong.calls) == (1, 1)
    del weak
    gc.collect()
    sig.send()
    assert strong.calls == 2
    assert len(sig.receivers) == 1


def test_dispatch_uid_replaces_a_receiver() -> None:
    sig = Signal("uid")
    calls: list[int] = []
    sig.connect(lambda **kw: calls.append(1), weak=False, dispatch_uid="one")
    sig.connect(lambda **kw: calls.append(2), weak=False, dispatch_uid="one")
    sig.send()
    assert calls == [2]
