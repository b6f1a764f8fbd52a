"""A group plans its plain members without copying them first: each call it adds must be
what copying, freezing and planning that member would add (``Signature.clone``, ``freeze``,
``plan``), and the group's own signatures must come out unchanged."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import Signature, chain, group
from taskq.canvas.sending import Plan

Call = tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any]]


@pytest.fixture
def tasks(app: TaskQ) -> dict[str, Any]:
    @app.task
    def add(*args: int, **kwargs: int) -> int:
        return sum(args) + sum(kwargs.values())

    @app.task
    def after(value: int) -> int:
        return value

    return {"add": add, "after": after}


def _members(tasks: dict[str, Any]) -> list[Signature[Any, Any]]:
    add, after = tasks["add"], tasks["after"]
    return [
        add.s(1),
        add.si(1, 2),  # immutable: the group's arguments are not prepended
        add.s(1, scale=2).set(queue="own", priority=9),
        add.s(1).set(group_id="kept", stamped_headers=["a"], reply_to="me"),
        add.s().set(link=after.s(), link_error=[after.s()], headers={"h": [1]}),
        add.s().set(task_id="fixed-id", root_id="old-root"),
        group(add.s(5), add.si(6)),  # nested: flattened into the group
    ]


def _by_copies(into: Plan, grp: group[Any, Any], args: Any, kwargs: Any, **options: Any) -> None:
    """The group's plan as it was written before: every member copied, frozen, planned."""
    options = {k: v for k, v in options.items() if v is not None}
    call_args = [*(args or ()), *grp.args]
    member_options, group_id, root_id = grp._freeze_gid(options)  # pyright: ignore[reportPrivateUsage]
    for index, task in enumerate(grp.flattened()):
        task.freeze(group_id=group_id, root_id=root_id, group_index=index)
        task.plan(into, call_args, kwargs, **member_options)


def _calls(into: Plan) -> list[Call]:
    """The planned calls with each generated task id replaced by its position."""
    calls: list[Call] = []
    for name, args, kwargs, options in into._calls:  # pyright: ignore[reportPrivateUsage]
        shown = dict(options)
        if shown["task_id"] != "fixed-id":
            shown["task_id"] = "generated"
        calls.append((name, tuple(args), kwargs, shown))
    return calls


@pytest.mark.parametrize(
    ("args", "kwargs", "options"),
    [
        ((), None, {}),
        ((7,), {"k": 3}, {"priority": 3, "queue": "q", "group_id": "ignored", "countdown": None}),
        ((), {}, {"root_id": "the-root", "stamped_headers": ["b"], "headers": {"x": 1}}),
    ],
)
def test_each_member_is_planned_as_a_frozen_copy_of_it(
    app: TaskQ, tasks: dict[str, Any], args: Any, kwargs: Any, options: dict[str, Any]
) -> None:
    members = _members(tasks)
    before = copy.deepcopy(members)
    planned, by_copies = Plan(app), Plan(app)
    # The group's own options reach every member; a None among them is dropped.
    grp = group(members).set(task_id="the-group", expires=None)
    result = grp.plan(planned, args, kwargs, **options)
    _by_copies(
        by_copies,
        group(copy.deepcopy(before)).set(task_id="the-group", expires=None),
        args,
        kwargs,
        **options,
    )

    assert _calls(planned) == _calls(by_copies)
    ids = [opts["task_id"] for _, _, _, opts in planned._calls]  # pyright: ignore[reportPrivateUsage]
    assert [r.id for r in result.results] == ids
    assert len(set(ids)) == len(ids)
    assert grp.tasks == before  # the group's own signatures are not frozen nor changed


def test_planned_calls_share_no_option_with_the_members(app: TaskQ, tasks: dict[str, Any]) -> None:
    member = tasks["add"].s().set(link=[tasks["after"].s()], headers={"h": [1]})
    planned = Plan(app)
    group([member, member]).plan(planned, (), None)
    for _, _, _, options in planned._calls:  # pyright: ignore[reportPrivateUsage]
        options["link"][0]["args"].append("changed")
        options["headers"]["h"].append("changed")
    assert member.options["link"][0]["args"] == []
    assert member.options["headers"] == {"h": [1]}


_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _shapes(into: Plan) -> list[str]:
    """The planned calls with every generated id (a UUID4, at any depth) made the same."""
    calls = into._calls  # pyright: ignore[reportPrivateUsage]
    # JSON, not repr: a signature's repr leaves out its options (the steps' ids and places).
    return [_UUID4.sub("<id>", json.dumps(call, sort_keys=True, default=repr)) for call in calls]


def _chains(tasks: dict[str, Any]) -> list[Any]:
    add, after = tasks["add"], tasks["after"]
    return [
        chain(add.s(1), after.s()),
        chain(add.s(1), chain(add.s(), after.s())).set(queue="q"),  # nested: spliced in
        chain(group(add.s(1), add.s(2)), after.s()),  # a group then a task: a chord
        chain(add.si(3), after.s()).set(link=after.s()),
        add.s(4) | after.s(),
    ]


@pytest.mark.parametrize(("args", "options"), [((), {}), ((7,), {"priority": 3, "root_id": "r"})])
def test_a_chain_member_is_planned_as_freezing_then_planning_it_did(
    app: TaskQ, tasks: dict[str, Any], args: Any, options: dict[str, Any]
) -> None:
    members = _chains(tasks)
    before = copy.deepcopy(members)
    planned, by_copies = Plan(app), Plan(app)
    group(members).set(task_id="the-group").plan(planned, args, None, **options)
    grp = group(copy.deepcopy(before)).set(task_id="the-group")
    _by_copies(by_copies, grp, args, None, **options)
    assert _shapes(planned) == _shapes(by_copies)
    assert members == before


def test_a_chains_partial_arguments_reach_its_first_step_once(
    app: TaskQ, tasks: dict[str, Any]
) -> None:
    partial = chain(tasks["add"].s(10), tasks["after"].s())
    partial.args = [1]
    alone, in_group, with_args = Plan(app), Plan(app), Plan(app)
    partial.plan(alone, (), None)
    group([partial]).plan(in_group, (), None)
    group([partial, partial]).plan(with_args, (7,), None)
    first_args = [args for _, args, _, _ in alone._calls]  # pyright: ignore[reportPrivateUsage]
    assert first_args == [(1, 10)]
    assert [args for _, args, _, _ in in_group._calls] == [(1, 10)]  # pyright: ignore[reportPrivateUsage]
    assert [args for _, args, _, _ in with_args._calls] == [(7, 1, 10)] * 2  # pyright: ignore[reportPrivateUsage]
