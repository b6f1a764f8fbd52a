"""The app: registering tasks, naming them, checking calls, and what send_task publishes."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import Task, TaskQ, shared_task
from taskq.context import Request, pop_request, push_request
from taskq.exceptions import ImproperlyConfigured, NotRegistered


def test_task_names_follow_celerys_rule(app: TaskQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="custom.name")
    def other() -> None: ...

    assert add.name == f"{__name__}.add"
    assert other.name == "custom.name"
    assert app.gen_task_name("f", "__main__") == "tests.f"
    assert app.tasks[add.name] is add
    assert add(2, 3) == 5  # calling a task runs it here
    assert add.__doc__ is None
    assert add.run.__name__ == "add"


def test_unknown_task_option_is_refused(app: TaskQ) -> None:
    with pytest.raises(TypeError, match="max_retry"):

        @app.task(max_retry=3)
        def f() -> None: ...


def test_missing_task_suggests_a_name(app: TaskQ) -> None:
    @app.task(name="proj.tasks.add")
    def add() -> None: ...

    with pytest.raises(NotRegistered, match=r"did you mean 'proj\.tasks\.add'"):
        app.tasks["proj.tasks.ad"]


def test_class_based_tasks_and_custom_base(app: TaskQ) -> None:
    calls: list[str] = []

    class Audited(app.Task):  # type: ignore[name-defined, misc]
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"before {self.name}")

    @app.task(base=Audited)
    def audited() -> str:
        return "ok"

    class Multiply(Task[Any, int]):
        name = "proj.multiply"

        def run(self, x: int, y: int) -> int:
            return x * y

    registered = app.register_task(Multiply)
    assert registered.app is app
    assert app.tasks["proj.multiply"](3, 4) == 12
    assert audited.apply().get() == "ok"
    assert calls == [f"before {audited.name}"]


def test_shared_tasks_join_every_app() -> None:
    first = TaskQ("first", broker="memory://shared-a", set_as_current=False)

    @shared_task
    def ping() -> str:
        return "pong"

    second = TaskQ("second", broker="memory://shared-b", set_as_current=False)
    name = f"{__name__}.ping"
    assert name in first.tasks
    assert name in second.tasks
    assert ping() == "pong"


def test_calls_are_checked_against_the_signature(app: TaskQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(typing=False)
    def loose(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"add.*missing a required argument: 'y'"):
        add.delay(1)  # type: ignore[call-arg]
    loose.apply_async((1, 2, 3))  # not checked: typing=False


def test_send_task_publishes_celerys_message(app: TaskQ, take: Any) -> None:
    @app.task(time_limit=30, soft_time_limit=20)
    def add(x: int, y: int) -> int:
        return x + y

    before = datetime.now(timezone.utc)
    result = add.apply_async(
        (2, 2),
        countdown=0.1,
        expires=60,
        priority=5,
        link=add.s(8),
        link_error=add.si(0, 0),
        headers={"x-custom": 1},
        shadow="shown",
    )
    time.sleep(0.15)  # the countdown is the broker's business
    msg, envelope = take(app)
    h = msg.headers
    assert msg.id == result.id == h.root_id == msg.properties.correlation_id
    assert (msg.name, msg.args, msg.kwargs) == (add.name, [2, 2], {})
    assert h.eta is not None
    assert before < h.eta < before + timedelta(seconds=1)
    assert h.expires is not None
    assert h.expires > before + timedelta(seconds=59)
    assert h.timelimit == (30, 20)
    assert h.shadow == "shown"
    assert h.extra == {"x-custom": 1}
    assert h.origin == app.nodename
    assert msg.properties.reply_to == app.thread_oid
    assert msg.properties.expiration is not None
    assert envelope.priority == 5
    assert envelope.routing_key == "celery"
    assert msg.embed.callbacks is not None
    assert msg.embed.callbacks[0].args == [8]
    assert msg.embed.errbacks is not None
    assert msg.embed.errbacks[0].immutable


def test_serializer_and_compression_options(app: TaskQ, take: Any) -> None:
    app.send_task("t", (1,), serializer="msgpack", compression="zlib")
    msg, envelope = take(app)
    assert envelope.content_type == "application/x-msgpack"
    assert envelope.headers["compression"] == "application/x-gzip"
    assert msg.args == [1]


def test_tasks_sent_from_a_task_carry_parent_and_root(app: TaskQ, take: Any) -> None:
    push_request(Request(id="parent-id", task="x", root_id="root-id"))
    try:
        app.send_task("child")
    finally:
        pop_request()
    msg, _ = take(app)
    assert (msg.headers.parent_id, msg.headers.root_id) == ("parent-id", "root-id")


def test_routes_choose_the_queue(app: TaskQ, take: Any) -> None:
    app.conf.task_routes = {"reports.*": {"queue": "slow"}}
    app.send_task("reports.monthly")
    msg, envelope = take(app, "slow")
    assert msg.name == "reports.monthly"
    assert envelope.routing_key == "slow"


def test_without_a_backend_results_say_what_to_configure() -> None:
    app = TaskQ("nobackend", broker="redis://localhost:1/0", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="result_backend"):
        _ = app.backend


def test_the_embedded_default_uses_one_sqlite_file(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    app = TaskQ("embedded", set_as_current=False)
    assert app.broker_is_default
    assert app.broker_url == app.backend_url == "sqlite:///taskq.sqlite3"

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    assert (tmp_path / "taskq.sqlite3").exists()
    assert app.transport.queue_length("celery") == 1
    app.close()
