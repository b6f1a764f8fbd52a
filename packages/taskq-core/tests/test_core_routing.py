"""Routing: Celery's precedence, every router form, queue declarations, -Q/-X, and errors."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from taskq.config import Settings
from taskq.contracts import QueueSpec
from taskq.exceptions import ImproperlyConfigured, QueueNotFound
from taskq.routing import Route, Router


def route(conf: Mapping[str, Any], name: str = "proj.tasks.add", **kw: Any) -> Route:
    return Router(conf).route(
        name, kw.pop("args", ()), kw.pop("kwargs", {}), kw.pop("options", {}),
        kw.pop("task_options", {}), **kw,
    )  # fmt: skip


# -- defaults and the anonymous exchange ----------------------------------------------------------


def test_no_configuration_routes_to_celery_through_the_anonymous_exchange() -> None:
    r = route({})
    assert (r.queue, r.exchange, r.routing_key, r.priority) == ("celery", "", "celery", None)
    assert r.spec == QueueSpec("celery", exchange="celery", exchange_type="direct",
                               routing_key="celery")  # fmt: skip
    assert r.options == {}


def test_app_settings_are_read_with_their_defaults() -> None:
    conf = Settings({"task_default_queue": "main", "task_default_priority": 3})
    r = Router(conf).route("t", (), {}, {}, {})
    assert (r.queue, r.exchange, r.routing_key, r.priority) == ("main", "", "main", 3)
    assert Router(conf).queues() == [QueueSpec("main", exchange="main", routing_key="main")]


def test_default_exchange_and_routing_key_settings_shape_the_default_queue() -> None:
    router = Router(
        {
            "task_default_queue": "q",
            "task_default_exchange": "tasks",
            "task_default_exchange_type": "topic",
            "task_default_routing_key": "task.default",
        }
    )
    (spec,) = router.queues()
    assert spec == QueueSpec("q", exchange="tasks", exchange_type="topic",
                             routing_key="task.default")  # fmt: skip
    r = router.route("t", (), {}, {}, {})
    assert (r.queue, r.exchange, r.routing_key) == ("q", "tasks", "task.default")


# -- precedence ----------------------------------------------------------------------------------


ROUTES = {"proj.tasks.add": {"queue": "routed", "priority": 1}}


def test_a_router_beats_the_default() -> None:
    r = route({"task_routes": ROUTES})
    assert (r.queue, r.priority) == ("routed", 1)


def test_task_attributes_beat_routers() -> None:
    r = route({"task_routes": ROUTES}, task_options={"queue": "attr", "priority": 5})
    assert (r.queue, r.priority) == ("attr", 5)


def test_apply_async_options_beat_task_attributes() -> None:
    r = route(
        {"task_routes": ROUTES},
        options={"queue": "explicit", "priority": 9},
        task_options={"queue": "attr", "priority": 5},
    )
    assert (r.queue, r.priority) == ("explicit", 9)


def test_precedence_is_per_key() -> None:
    # The router still supplies the priority when the caller only names a queue.
    r = route({"task_routes": ROUTES}, options={"queue": "explicit"})
    assert (r.queue, r.priority) == ("explicit", 1)
    r = route({"task_routes": ROUTES}, task_options={"priority": 7})
    assert (r.queue, r.priority) == ("routed", 7)


def test_none_means_not_given_at_every_level() -> None:
    r = route(
        {"task_routes": ROUTES, "task_default_priority": 4},
        options={"queue": None, "priority": None},
        task_options={"queue": None, "priority": None},
    )
    assert (r.queue, r.priority) == ("routed", 1)
    r = route({"task_default_priority": 4}, options={"priority": None})
    assert r.priority == 4


def test_default_priority_is_the_last_resort() -> None:
    assert route({"task_default_priority": 2}).priority == 2
    assert route({"task_default_priority": 2}, options={"priority": 0}).priority == 0


def test_the_routing_key_travels_with_the_queue_that_chose_it() -> None:
    conf = {
        "task_queues": [QueueSpec("hi", exchange="ex", exchange_type="topic", routing_key="hi.#")],
        "task_routes": {"proj.tasks.*": {"queue": "lo", "exchange": "ex", "routing_key": "lo.x"}},
    }
    # A router's exchange and routing key belong to its own queue, not the caller's.
    r = route(conf, options={"queue": "hi"})
    assert (r.queue, r.exchange, r.routing_key) == ("hi", "ex", "hi.#")
    # A routing key given with (or above) the chosen queue is kept.
    r = route(conf, options={"routing_key": "hi.urgent"}, task_options={"queue": "hi"})
    assert (r.queue, r.exchange, r.routing_key) == ("hi", "ex", "hi.urgent")


# -- router forms ----------------------------------------------------------------------------------


def test_dict_router_exact_names_win_over_patterns() -> None:
    routes = {"proj.tasks.*": "glob", "proj.tasks.add": "exact"}
    assert route({"task_routes": routes}).queue == "exact"
    assert route({"task_routes": routes}, "proj.tasks.mul").queue == "glob"
    assert route({"task_routes": routes}, "other.add").queue == "celery"


def test_glob_patterns_match_the_whole_name() -> None:
    routes = {"proj.*.add": "glob"}
    assert route({"task_routes": routes}, "proj.tasks.add").queue == "glob"
    assert route({"task_routes": routes}, "proj.tasks.add_more").queue == "celery"
    assert route({"task_routes": routes}, "xproj.tasks.add").queue == "celery"


def test_regex_keys_and_pattern_order() -> None:
    routes = {re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"}, "*": "everything"}
    assert route({"task_routes": routes}, "video.tasks.encode").queue == "media"
    assert route({"task_routes": routes}, "image.tasks.resize").queue == "media"
    assert route({"task_routes": routes}, "audio.tasks.mix").queue == "everything"


def test_a_list_of_routers_asks_each_until_one_answers() -> None:
    calls: list[str] = []

    def silent(name: str, *args: Any, **kwargs: Any) -> None:
        calls.append(name)

    routes = [silent, {"nope": "x"}, {"proj.tasks.*": "second"}, {"proj.tasks.add": "third"}]
    assert route({"task_routes": routes}).queue == "second"
    assert calls == ["proj.tasks.add"]


def test_a_list_of_pairs_is_a_map_router() -> None:
    routes = ([("feed.tasks.*", {"queue": "feeds"}), (re.compile(r"web\..*"), "web")],)
    assert route({"task_routes": routes}, "feed.tasks.import").queue == "feeds"
    assert route({"task_routes": routes}, "web.render").queue == "web"


def test_a_callable_router_gets_the_call_and_may_answer_str_dict_or_none() -> None:
    seen: list[tuple[Any, ...]] = []

    def router(
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: object = None,
        **kw: Any,
    ) -> str | dict[str, Any] | None:
        seen.append((name, tuple(args), dict(kwargs), dict(options), task))
        if name == "as.str":
            return "strq"
        if name == "as.dict":
            return {"queue": "dictq", "priority": 3}
        return None

    marker = object()
    conf = {"task_routes": router}
    r = route(conf, "as.str", args=(1, 2), kwargs={"k": 3}, options={"countdown": 5},
              task_options={"priority": 1, "queue": None}, task=marker)  # fmt: skip
    assert r.queue == "strq"
    assert seen[-1] == ("as.str", (1, 2), {"k": 3}, {"countdown": 5, "priority": 1}, marker)
    r = route(conf, "as.dict")
    assert (r.queue, r.priority) == ("dictq", 3)
    assert route(conf, "as.none").queue == "celery"


def test_an_empty_answer_stops_the_search() -> None:
    routes = [lambda *a, **kw: {}, {"proj.tasks.add": "never"}]
    assert route({"task_routes": routes}).queue == "celery"


def test_a_router_may_answer_with_a_queue_object() -> None:
    spec = QueueSpec("objq", exchange="objx", exchange_type="topic", routing_key="obj.#")
    r = route({"task_routes": [lambda *a, **kw: spec]})
    assert (r.queue, r.exchange, r.routing_key) == ("objq", "objx", "obj.#")
    assert r.spec == spec


def test_other_options_a_router_returns_are_passed_on() -> None:
    r = route(
        {"task_routes": {"proj.tasks.add": {"queue": "q", "expires": 60, "serializer": "pickle"}}}
    )
    assert r.options == {"expires": 60, "serializer": "pickle"}


def test_a_pre_4_0_router_object_and_class() -> None:
    class Legacy:
        def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
            return {"queue": "legacy"} if task.startswith("proj.") else None

    assert route({"task_routes": [Legacy()]}).queue == "legacy"
    module = types.ModuleType("taskq_routing_test_routers")
    module.Legacy = Legacy  # type: ignore[attr-defined]
    module.by_name = lambda name, *a, **kw: "by-path"  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, module.__name__, module)
        assert route({"task_routes": ["taskq_routing_test_routers.Legacy"]}).queue == "legacy"
        assert route({"task_routes": ["taskq_routing_test_routers:by_name"]}).queue == "by-path"


# -- queues ----------------------------------------------------------------------------------------


def test_task_queues_accept_specs_dicts_and_kombu_queues() -> None:
    kombu = pytest.importorskip("kombu")
    router = Router(
        {
            "task_queues": [
                QueueSpec("a"),
                {"name": "b", "exchange": "bx", "exchange_type": "topic", "routing_key": "b.#",
                 "queue_arguments": {"x-queue-type": "quorum"}, "durable": True},
                kombu.Queue("c", kombu.Exchange("cx", type="fanout"), routing_key="c.key",
                            max_priority=5),
                kombu.Queue("d"),
            ]
        }
    )  # fmt: skip
    assert router.queues() == [
        QueueSpec("a", exchange="celery", routing_key="a"),
        QueueSpec("b", exchange="bx", exchange_type="topic", routing_key="b.#",
                  arguments={"x-queue-type": "quorum"}),
        QueueSpec("c", exchange="cx", exchange_type="fanout", routing_key="c.key",
                  arguments={"x-max-priority": 5}, max_priority=5),
        QueueSpec("d", exchange="celery", routing_key="d"),
    ]  # fmt: skip


def test_task_queues_as_a_dict_of_names() -> None:
    router = Router({"task_queues": {"a": {"binding_key": "a.key"}, "b": {}}})
    assert [(q.name, q.routing_key) for q in router.queues()] == [("a", "a.key"), ("b", "b")]


def test_declared_queues_replace_the_default_queue() -> None:
    router = Router({"task_queues": [QueueSpec("a")]})
    assert [q.name for q in router.queues()] == ["a"]
    # Unrouted tasks still go to the default queue, created on use as in Celery.
    assert router.route("t", (), {}, {}, {}).queue == "celery"


def test_queue_max_priority_applies_where_a_queue_sets_none() -> None:
    router = Router(
        {
            "task_queue_max_priority": 10,
            "task_queues": [
                QueueSpec("a"),
                QueueSpec("b", max_priority=3),
                QueueSpec("c", arguments={"x-max-priority": 4}),
            ],
        }
    )
    assert [(q.max_priority, q.arguments["x-max-priority"]) for q in router.queues()] == [
        (10, 10), (3, 3), (4, 4),
    ]  # fmt: skip
    assert router.route("t", (), {}, {"queue": "new"}, {}).spec.max_priority == 10


def test_direct_queues_publish_to_the_anonymous_exchange() -> None:
    conf = {"task_queues": [QueueSpec("a", exchange="ax", routing_key="a.key")]}
    r = route(conf, options={"queue": "a"})
    assert (r.exchange, r.routing_key) == ("", "a")
    # Only an explicit exchange *and* routing key keep a direct exchange.
    r = route(conf, options={"queue": "a", "exchange": "ax", "routing_key": "a.key"})
    assert (r.exchange, r.routing_key) == ("ax", "a.key")
    r = route(conf, options={"queue": "a", "routing_key": "a.key"})
    assert (r.exchange, r.routing_key) == ("", "a")


def test_topic_queues_publish_to_their_exchange_with_their_routing_key() -> None:
    conf = {
        "task_queues": [QueueSpec("t", exchange="tx", exchange_type="topic", routing_key="t.#")]
    }
    r = route(conf, options={"queue": "t"})
    assert (r.queue, r.exchange, r.routing_key) == ("t", "tx", "t.#")
    r = route(conf, options={"queue": "t", "routing_key": "t.one"})
    assert (r.exchange, r.routing_key) == ("tx", "t.one")


def test_kombu_exchange_objects_in_options() -> None:
    kombu = pytest.importorskip("kombu")
    r = route({}, options={"exchange": kombu.Exchange("fx", type="topic"), "routing_key": "k"})
    assert (r.queue, r.exchange, r.routing_key) == ("celery", "fx", "k")


def test_missing_queues_are_created_by_default() -> None:
    router = Router({})
    r = router.route("t", (), {}, {"queue": "fresh"}, {})
    assert r.spec == QueueSpec("fresh", exchange="fresh", routing_key="fresh")
    assert router.queue("fresh") is r.spec
    assert [q.name for q in router.queues()] == ["celery"]


def test_missing_queues_are_an_error_when_not_created() -> None:
    router = Router({"task_create_missing_queues": False, "task_queues": [QueueSpec("a")]})
    with pytest.raises(QueueNotFound, match=r"'nope'.*task_queues.*task_create_missing_queues"):
        router.route("t", (), {}, {"queue": "nope"}, {})
    with pytest.raises(QueueNotFound, match="'celery'"):
        router.route("t", (), {}, {}, {})  # the default queue is not declared either
    assert router.route("t", (), {}, {"queue": "a"}, {}).queue == "a"


# -- -Q and -X -------------------------------------------------------------------------------------


def test_select_takes_names_or_a_comma_list() -> None:
    router = Router({"task_queues": [QueueSpec("a"), QueueSpec("b"), QueueSpec("c")]})
    assert [q.name for q in router.select("c, a,,a")] == ["c", "a"]
    assert [q.name for q in router.select(["b"])] == ["b"]
    assert [q.name for q in router.select("")] == ["a", "b", "c"]
    assert router.select("new")[0] == QueueSpec("new", exchange="new", routing_key="new")


def test_select_refuses_unknown_names_without_create_missing() -> None:
    router = Router({"task_queues": [QueueSpec("a")], "task_create_missing_queues": False})
    with pytest.raises(QueueNotFound, match="'b'"):
        router.select("a,b")


def test_exclude() -> None:
    router = Router({"task_queues": [QueueSpec("a"), QueueSpec("b"), QueueSpec("c")]})
    assert [q.name for q in router.exclude("b")] == ["a", "c"]
    assert [q.name for q in router.exclude(["a"], among=router.select("a,c"))] == ["c"]
    assert [q.name for q in router.exclude("b", among=router.select("a"))] == ["a"]
    with pytest.raises(QueueNotFound, match="'typo'"):
        router.exclude("a,typo")


# -- bad configuration and bad calls ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "setting", "message"),
    [
        ({"task_routes": [42]}, "task_routes", "expected a dict"),
        ({"task_routes": {"a": 42}}, "task_routes", "expected a dict, a queue name or None"),
        ({"task_routes": {1: "q"}}, "task_routes", "task name, glob or regex"),
        ({"task_routes": {"a": {"queue": 3}}}, "task_routes", "names queue 3"),
        ({"task_routes": [[("a", "q", "extra")]]}, "task_routes", "pairs"),
        ({"task_routes": ["no_such_module_xyz.route"]}, "task_routes", "cannot import"),
        ({"task_routes": ["taskq.routing.no_such_router"]}, "task_routes", "has no router"),
        ({"task_routes": ["justaname"]}, "task_routes", "module.attribute"),
        ({"task_queues": [QueueSpec("a"), QueueSpec("a")]}, "task_queues", "declared twice"),
        ({"task_queues": [{"name": "a", "exchnage": "x"}]}, "task_queues", "unknown keys"),
        ({"task_queues": [{"exchange": "x"}]}, "task_queues", "needs a name"),
        ({"task_queues": [42]}, "task_queues", "expected a queue"),
        ({"task_queues": "a"}, "task_queues", "expected a list"),
        ({"task_queues": {"a": "x"}}, "task_queues", "name: options"),
        ({"task_queues": [{"name": "a", "queue_arguments": 1}]}, "task_queues", "must be a dict"),
        ({"task_queues": [QueueSpec("a", max_priority=300)]}, "task_queues", "0 to 255"),
        ({"task_queue_max_priority": -1}, "task_queue_max_priority", "0 to 255"),
        ({"task_default_priority": True}, "task_default_priority", "0 to 255"),
    ],
)
def test_bad_configuration_names_the_setting(
    conf: dict[str, Any], setting: str, message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)) as info:
        Router(conf)
    assert info.value.setting == setting


def test_a_router_answering_nonsense_is_a_configuration_error() -> None:
    router = Router({"task_routes": [lambda *a, **kw: 42]})
    with pytest.raises(ImproperlyConfigured, match=r"task_routes: router .* returned 42"):
        router.route("t", (), {}, {}, {})
    router = Router({"task_routes": {"t": {"queue": "q", "priority": 256}}})
    with pytest.raises(ImproperlyConfigured, match="0 to 255"):
        router.route("t", (), {}, {}, {})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "high"}, "apply_async options: priority"),
        ({"priority": 256}, "apply_async options: priority"),
        ({"routing_key": 5}, "routing_key must be a string"),
        ({"exchange": 5}, "exchange must be a name"),
        ({"queue": 5}, "expected a queue"),
    ],
)
def test_bad_call_options_are_value_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        route({}, options=options)
    assert not isinstance(info.value, ImproperlyConfigured)


def test_bad_task_attribute_priority_names_the_task_options() -> None:
    with pytest.raises(ValueError, match="task options: priority"):
        route({}, task_options={"priority": -1})


# -- Celery agrees ----------------------------------------------------------------------------------


@pytest.mark.interop
def test_celery_routes_the_same_tasks_to_the_same_queues() -> None:
    celery = pytest.importorskip("celery")

    def by_args(
        name: str, args: Sequence[Any], kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> Any:
        return {"queue": "big"} if args and args[0] > 100 else None

    task_routes = [
        by_args,
        {"proj.exact": "exact", "proj.*": {"queue": "globbed"}, re.compile(r"media\..*"): "media"},
    ]
    capp = celery.Celery("routing", set_as_current=False)
    capp.conf.task_routes = task_routes
    router = Router({"task_routes": task_routes})
    cases: list[tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any]]] = [
        ("proj.exact", (1,), {}, {}),
        ("proj.other", (1,), {}, {}),
        ("proj.other", (500,), {}, {}),
        ("media.encode", (), {}, {}),
        ("elsewhere", (), {}, {}),
        ("proj.exact", (), {}, {"queue": "explicit"}),
    ]
    for name, args, kwargs, options in cases:
        theirs = capp.amqp.router.route(dict(options), name, args, kwargs)["queue"].name
        ours = router.route(name, args, kwargs, options, {}).queue
        assert ours == theirs, (name, args, options)
