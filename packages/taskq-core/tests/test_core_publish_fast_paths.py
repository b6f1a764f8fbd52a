"""The sending path's shortcuts keep every behaviour: routes remembered only where a router
answers from the task name, the positional-count check of arguments, the clock read only when a
time is asked for, and the origin of a changed ``nodename``."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import TaskQ
from taskq.routing import Router


def test_table_routes_are_decided_once_per_name_and_options() -> None:
    router = Router({"task_routes": {"a.*": {"queue": "qa"}}})
    first = router.route("a.one")
    assert router.route("a.one") is first  # remembered
    assert first.queue == "qa"
    assert router.route("a.one", options={"queue": "other"}).queue == "other"
    assert router.route("a.one", task_options={"priority": 5}).priority == 5
    assert router.route("b.two").queue == "celery"
    assert router.route("a.one").queue == "qa"


def test_a_router_function_is_asked_every_call() -> None:
    asked: list[tuple[Any, ...]] = []

    def by_first_argument(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> Any:
        asked.append(tuple(args))
        return {"queue": f"q{args[0]}"} if args else None

    router = Router({"task_routes": [by_first_argument]})
    assert router.route("t", (1,)).queue == "q1"
    assert router.route("t", (2,)).queue == "q2"
    assert router.route("t", ()).queue == "celery"
    assert asked == [(1,), (2,), ()]


def test_a_queue_object_in_the_options_is_routed_each_time() -> None:
    class Queue:
        def __init__(self, name: str) -> None:
            self.name = name

    router = Router({})
    assert router.route("t", options={"queue": Queue("q1")}).queue == "q1"
    assert router.route("t", options={"queue": Queue("q2")}).queue == "q2"


def test_positional_calls_are_checked_by_count(app: TaskQ) -> None:
    @app.task
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task
    def many(*values: int) -> int:
        return sum(values)

    @app.task
    def keyword(x: int, *, scale: int) -> int:
        return x * scale

    add.check_arguments((1,), {})
    add.check_arguments((1, 2), {})
    with pytest.raises(TypeError, match="add"):
        add.check_arguments((), {})
    with pytest.raises(TypeError, match="add"):
        add.check_arguments((1, 2, 3), {})
    with pytest.raises(TypeError):
        add.delay(1, 2, 3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    many.check_arguments(tuple(range(50)), {})
    with pytest.raises(TypeError, match="scale"):
        keyword.check_arguments((1,), {})
    keyword.check_arguments((1,), {"scale": 2})
    with pytest.raises(TypeError):
        add.check_arguments((1,), {"z": 2})


def test_no_times_asked_means_none_sent(app: TaskQ, take: Any) -> None:
    @app.task
    def plain() -> None: ...

    plain.delay()
    message, envelope = take(app)
    assert message.headers.eta is None
    assert message.headers.expires is None
    assert "expiration" not in envelope.properties
    plain.apply_async(expires=120)
    message, envelope = take(app)
    assert message.headers.expires is not None
    assert 110_000 <= int(envelope.properties["expiration"]) <= 120_000
    delayed = app.publisher.send(plain.name, (), {}, {"countdown": 60, "expires": 120}, plain)
    assert delayed.headers.eta is not None
    assert delayed.headers.expires is not None
    assert 59 <= (delayed.headers.expires - delayed.headers.eta).total_seconds() <= 61


def test_origin_is_the_apps_nodename(app: TaskQ, take: Any) -> None:
    @app.task
    def plain() -> None: ...

    plain.delay()
    message, _ = take(app)
    assert message.headers.origin == app.nodename


def test_a_nodename_changed_by_a_subclass_is_the_origin(take: Any) -> None:
    class Named(TaskQ):
        @property
        def nodename(self) -> str:
            return "custom@node"

    app = Named("tests", broker="memory://named-origin")
    try:

        @app.task
        def plain() -> None: ...

        plain.delay()
        message, _ = take(app)
        assert message.headers.origin == "custom@node"
    finally:
        app.close()


def test_a_big_batch_leaves_the_collector_as_it_found_it(app: TaskQ) -> None:
    import gc

    from taskq.contracts import TransportError

    @app.task
    def plain() -> None: ...

    items = [(plain.name, (), {}, {})] * 100
    assert gc.isenabled()
    assert len(app.publisher.send_many(items)) == 100
    assert gc.isenabled()
    gc.disable()
    try:
        app.publisher.send_many(items)
        assert not gc.isenabled()
    finally:
        gc.enable()

    class Failing:
        def publish_many(self, batch: Any) -> None:
            assert not gc.isenabled()  # paused while the batch is published
            raise TransportError("broker away")

        def close(self) -> None: ...

    app._transport = Failing()  # type: ignore[assignment]  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
    with pytest.raises(TransportError):
        app.publisher.send_many([(plain.name, (), {}, {"retry": False})] * 100)
    assert gc.isenabled()
