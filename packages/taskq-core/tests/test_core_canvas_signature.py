"""Signatures: building, partial application, options, freezing, links, and dicts on the wire."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    xmap,
    xstarmap,
)
from taskq_testing.inprocess import run_queued


@pytest.fixture
def tasks(app: TaskQ) -> Any:
    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    class Tasks:
        pass

    found = Tasks()
    found.add, found.echo = add, echo  # type: ignore[attr-defined]
    return found


# -- building ----------------------------------------------------------------------------------


def test_s_is_a_signature_dict_in_celerys_shape(tasks: Any) -> None:
    sig = tasks.add.s(2, y=3)
    assert dict(sig) == {
        "task": "proj.add",
        "args": [2],
        "kwargs": {"y": 3},
        "options": {},
        "subtask_type": None,
        "immutable": False,
    }
    assert (sig.task, sig.name, sig.args, sig.kwargs, sig.immutable) == (
        "proj.add",
        "proj.add",
        [2],
        {"y": 3},
        False,
    )
    assert tasks.add.si(1, 2).immutable
    assert tasks.add.signature((1,), {"y": 2}, countdown=5).options == {"countdown": 5}
    assert tasks.add.subtask((1, 2)) == tasks.add.s(1, 2)


def test_partial_args_are_prepended_and_kwargs_merged(tasks: Any) -> None:
    sig = tasks.echo.s(2, 3, a=1, b=1)
    args, kwargs, _ = sig._merge((1,), {"b": 2})
    assert (args, kwargs) == ([1, 2, 3], {"a": 1, "b": 2})
    assert tasks.echo.s(2).clone((1,), {"k": 1}).args == [1, 2]
    assert sig(0) == [[0, 2, 3], {"a": 1, "b": 1}]  # __call__ runs the function here


def test_an_immutable_signature_takes_options_but_no_arguments(tasks: Any) -> None:
    sig = tasks.echo.si(1)
    args, kwargs, options = sig._merge((99,), {"x": 1}, {"countdown": 3})
    assert (args, kwargs, options) == ([1], {}, {"countdown": 3})


def test_options_merge_over_the_signatures_own_but_group_id_stays(tasks: Any) -> None:
    sig = tasks.add.s(1, 2).set(queue="a", group_id="g1", priority=1)
    _, _, options = sig._merge(None, None, {"queue": "b", "group_id": "g2", "countdown": 1})
    assert options == {"queue": "b", "group_id": "g1", "priority": 1, "countdown": 1}


def test_apply_async_options_win_over_the_signatures(app: TaskQ, tasks: Any, take: Any) -> None:
    sig = tasks.add.s(1).set(priority=3, expires=60, headers={"from": "sig"})
    sig.apply_async((2,), priority=7, countdown=None, headers={"from": "call"})
    message, envelope = take(app)
    assert message.args == [2, 1]
    assert envelope.priority == 7
    assert message.headers.expires is not None  # kept from the signature
    assert message.headers.extra.get("from") == "call"
    assert message.headers.eta is None  # countdown=None is dropped, as Celery drops None


def test_delay_with_partial_args_runs_with_them(app: TaskQ, tasks: Any) -> None:
    result = tasks.add.s(10).delay(5)
    run_queued(app)
    assert result.get(timeout=1) == 15


def test_set_returns_the_signature_and_sets_immutability(tasks: Any) -> None:
    sig = tasks.add.s(1)
    assert sig.set(immutable=True, countdown=1) is sig
    assert sig.immutable
    assert sig.options == {"countdown": 1}


def test_clone_shares_nothing_with_the_original(tasks: Any) -> None:
    sig = tasks.add.s(1).set(link=[tasks.echo.s()])
    copy = sig.clone()
    copy.options["link"].append(tasks.echo.s("x"))
    copy.args.append(5)
    assert len(sig.options["link"]) == 1
    assert sig.args == [1]
    members = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    copied = members.clone()
    copied.tasks[0].set(queue="q")
    assert members.tasks[0].options == {}
    assert isinstance(copied, group)


def test_a_plain_clone_is_an_equal_signature_of_the_same_app(tasks: Any) -> None:
    sig = tasks.add.s(1, y=2).set(countdown=3)
    copy = sig.clone((0,), {"z": 1}, priority=4)
    assert type(copy) is Signature
    assert copy.app is sig.app
    assert dict(copy) == {
        **sig,
        "args": [0, 1],
        "kwargs": {"y": 2, "z": 1},
        "options": {"countdown": 3, "priority": 4},
    }
    copy.kwargs["y"] = 5
    copy.options["countdown"] = 6
    assert (sig.kwargs, sig.options) == ({"y": 2}, {"countdown": 3})


def test_a_plain_signature_naming_a_canvas_type_clones_as_that_type(tasks: Any) -> None:
    members = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    plain = Signature(dict(members))
    assert type(plain) is Signature
    assert isinstance(plain.clone(), group)


def test_replace_swaps_whole_fields(tasks: Any) -> None:
    sig = tasks.add.s(1, 2).set(queue="q")
    replaced = sig.replace(args=(3, 4), options={"priority": 1})
    assert (replaced.args, replaced.options) == ([3, 4], {"priority": 1})
    assert (sig.args, sig.options) == ([1, 2], {"queue": "q"})


# -- freezing ----------------------------------------------------------------------------------


def test_freeze_fixes_the_id_once(app: TaskQ, tasks: Any) -> None:
    sig = tasks.add.s(1, 2)
    result = sig.freeze()
    assert sig.id == result.id == sig.options["task_id"]
    assert sig.freeze().id == result.id, "freezing twice keeps the first id"
    assert sig.options["reply_to"] == app.thread_oid
    placed = tasks.add.s(1, 2)
    placed.freeze("fixed", group_id="g", group_index=3, root_id="r", parent_id="p")
    placed.freeze(group_id="other")
    assert {k: placed.options[k] for k in ("task_id", "group_id", "group_index", "root_id")} == {
        "task_id": "fixed",
        "group_id": "g",
        "group_index": 3,
        "root_id": "r",
    }


def test_a_frozen_signature_is_sent_under_its_id(app: TaskQ, tasks: Any, take: Any) -> None:
    sig = tasks.add.s(1, 2)
    frozen = sig.freeze()
    sent = sig.apply_async()
    message, _ = take(app)
    assert frozen.id == sent.id == message.id


def test_freezing_a_chain_gives_the_last_result_with_parents(tasks: Any) -> None:
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.add.s(4))
    last = workflow.freeze()
    assert last.id == workflow.tasks[-1].id
    assert last.parent is not None
    assert last.parent.id == workflow.tasks[1].id
    assert last.parent.parent is not None
    assert last.parent.parent.id == workflow.tasks[0].id


def test_freezing_a_group_and_a_chord(tasks: Any) -> None:
    members = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    result = members.freeze()
    assert result.id == members.id
    assert [r.id for r in result.results] == [t.id for t in members.tasks]
    assert [t.options["group_index"] for t in members.tasks] == [0, 1]
    workflow = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.echo.s())
    body = workflow.freeze()
    assert body.id == workflow.body.id
    assert body.parent is not None
    assert body.parent.id == workflow.id == workflow.header.id
    assert all(t.options["chord"] is workflow.body for t in workflow.header.tasks)


# -- links -------------------------------------------------------------------------------------


def test_link_and_link_error_append_once(tasks: Any) -> None:
    sig = tasks.add.s(1, 2)
    callback, errback = tasks.echo.s("ok"), tasks.echo.s("bad")
    assert sig.link(callback) is callback
    assert sig.link(callback) is callback
    assert sig.link_error(errback) is errback
    assert sig.on_error(tasks.echo.s("other")) is sig
    assert sig.options["link"] == [callback]
    assert sig.options["link_error"] == [errback, tasks.echo.s("other")]
    assert sig.flatten_links() == [sig, callback]


def test_a_group_links_its_first_member_and_every_errback(tasks: Any) -> None:
    members = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    members.link(tasks.echo.s())
    members.link_error(tasks.echo.s("e"))
    assert members.tasks[0].options["link"][0].immutable
    assert "link" not in members.tasks[1].options
    assert all(len(t.options["link_error"]) == 1 for t in members.tasks)
    with pytest.raises(TypeError, match="use a chord"):
        members.apply_async(link=tasks.echo.s())


# -- dicts from the wire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "cls"),
    [
        (lambda t: t.add.s(1, 2), Signature),
        (lambda t: chain(t.add.s(1, 2), t.add.s(3)), chain),
        (lambda t: group(t.add.s(1, 2), t.add.s(3, 4)), group),
        (lambda t: chord([t.add.s(1, 2)], t.echo.s()), chord),
        (lambda t: t.add.map([1, 2]), xmap),
        (lambda t: t.add.starmap([[1, 2]]), xstarmap),
        (lambda t: t.add.chunks([[1, 2]], 1), chunks),
    ],
    ids=["task", "chain", "group", "chord", "xmap", "xstarmap", "chunks"],
)
def test_a_signature_survives_json_and_pickle_as_its_class(
    app: TaskQ, tasks: Any, build: Any, cls: type
) -> None:
    sig = build(tasks)
    from_json = maybe_signature(json.loads(json.dumps(sig)), app=app)
    assert type(from_json) is cls
    assert from_json == sig
    from_pickle = pickle.loads(pickle.dumps(sig))
    assert type(from_pickle) is cls
    assert from_pickle == sig


def test_keys_a_newer_celery_writes_are_kept(app: TaskQ) -> None:
    raw = {"task": "proj.add", "args": [1], "kwargs": {}, "options": {}, "future": {"x": 1}}
    sig = signature(raw, app=app)
    assert sig["future"] == {"x": 1}
    assert sig.clone()["future"] == {"x": 1}


def test_signature_copies_a_signature_and_names_a_task(app: TaskQ, tasks: Any) -> None:
    original = tasks.add.s(1)
    copy = signature(original)
    assert copy == original
    assert copy is not original
    assert signature("proj.add", (1, 2), countdown=1) == Signature(
        "proj.add", [1, 2], {}, {"countdown": 1}
    )
    assert maybe_signature(None) is None


def test_repr_reads_like_a_call(tasks: Any) -> None:
    assert repr(tasks.add.s(1, y=2)) == "proj.add(1, y=2)"
    assert repr(tasks.add.si(1, 2)) == "proj.add(1, 2)!"
    assert repr(tasks.add.s(1) | tasks.add.s(2)) == "proj.add(1) | proj.add(2)"


def test_a_signature_for_an_unregistered_task_is_sent_by_name(app: TaskQ, take: Any) -> None:
    result = signature("elsewhere.task", (1,), app=app).apply_async(countdown=0)
    message, _ = take(app)
    assert (message.name, message.id, message.args) == ("elsewhere.task", result.id, [1])
