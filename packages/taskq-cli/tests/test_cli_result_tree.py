"""``taskq result --tree``: workflows stored into a real SQLite result store in the layouts a
Celery 5.7 worker leaves (recorded from one: which meta lists which child, which has a
``group_id`` or ``parent_id``), read back as trees, drawn as text and as JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq_cli.main import main
from taskq_cli.result_tree import (
    ChainNode,
    ChordNode,
    GroupNode,
    Hidden,
    Limits,
    Node,
    TaskNode,
    TreeBuilder,
    build_tree,
    has_failed,
    is_finished,
    iter_tasks,
)
from taskq_cli.tree_render import ASCII, render_text, to_json
from taskq_protocol import ResultMeta, ResultRef, exception_to_dict, states

TIMEOUT = 60


class Store:
    """Writes metas the way a worker would, into a SQLite file the command reads too."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = TaskQ("tests", broker=url, result_extended=True, set_as_current=False)
        self.backend = self.app.backend

    def task(
        self,
        task_id: str,
        result: Any = None,
        *,
        state: str = states.SUCCESS,
        name: str | None = "proj.add",
        children: Sequence[ResultRef] = (),
        parent: str | None = None,
        group: str | None = None,
    ) -> None:
        self.backend.store(
            ResultMeta(
                task_id,
                state,
                result,
                children=[ref.as_tuple() for ref in children],
                parent_id=parent,
                group_id=group,
                name=name,
            )
        )

    def failed(self, task_id: str, exc: Exception, **fields: Any) -> None:
        fields.setdefault("name", "proj.fail")
        self.task(task_id, exception_to_dict(exc), state=states.FAILURE, **fields)

    def tree(self, node_id: str, **limits: Any) -> Node:
        return build_tree(self.backend, node_id, Limits(**limits))

    def text(self, node_id: str, **limits: Any) -> str:
        return render_text(self.tree(node_id, **limits))


def task_ref(task_id: str, parent: ResultRef | None = None) -> ResultRef:
    return ResultRef(task_id, parent)


def group_ref(group_id: str, *members: ResultRef) -> ResultRef:
    return ResultRef(group_id, None, members)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/results.db")
    yield store
    store.app.close()


def taskq(store: Store, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-b", store.url, "--result-backend", store.url, "result", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- chains ------------------------------------------------------------------------------------------


def store_chain(store: Store) -> None:
    """chain(add(1, 2), add(3), add(4)): each step lists the next and is its parent."""
    store.task("c1", 3, children=[task_ref("c2")])
    store.task("c2", 6, children=[task_ref("c3")], parent="c1")
    store.task("c3", 10, parent="c2")


def test_a_chain_from_its_last_step_shows_every_step(store):
    store_chain(store)
    tree = store.tree("c3")
    assert isinstance(tree, ChainNode)
    assert [(s.id, s.name, s.state, s.result) for s in iter_tasks(tree)] == [
        ("c1", "proj.add", "SUCCESS", 3),
        ("c2", "proj.add", "SUCCESS", 6),
        ("c3", "proj.add", "SUCCESS", 10),
    ]
    assert render_text(tree) == (
        "chain\n├── proj.add c1 SUCCESS 3\n├── proj.add c2 SUCCESS 6\n└── proj.add c3 SUCCESS 10"
    )
    assert store.text("c2") == store.text("c1") == render_text(tree)
    assert is_finished(tree)
    assert not has_failed(tree)


def test_subtree_starts_at_the_id_given(store):
    store_chain(store)
    tree = build_tree(store.backend, "c2", climb=False)
    assert isinstance(tree, ChainNode)
    assert [step.id for step in iter_tasks(tree)] == ["c2", "c3"]


def test_an_unknown_id_is_one_pending_task(store):
    assert store.tree("nobody") == TaskNode("nobody", None, states.PENDING)
    assert store.text("nobody") == "nobody PENDING"


def test_a_running_chain_shows_the_steps_not_stored_yet_as_pending(store):
    store.task("r1", 3, children=[task_ref("r2")])
    store.task("r2", None, state=states.STARTED, parent="r1")
    assert store.text("r1") == ("chain\n├── proj.add r1 SUCCESS 3\n└── proj.add r2 STARTED")
    assert not is_finished(store.tree("r1"))


def test_a_failed_step_shows_its_exception_and_the_steps_that_never_ran(store):
    store.task("f1", 2, children=[task_ref("f2")])
    store.failed("f2", ValueError("boom", 42), parent="f1")
    tree = store.tree("f2")
    assert render_text(tree) == (
        "chain\n├── proj.add f1 SUCCESS 2\n└── proj.fail f2 FAILURE ValueError: ('boom', 42)"
    )
    assert has_failed(tree)
    assert is_finished(tree)


def test_a_task_with_several_followers_has_them_as_children(store):
    # Celery's spawner: it sent a group and a task from its body, so its meta lists both.
    store.task(
        "sp", "spawned", name="proj.spawner",
        children=[group_ref("g", task_ref("g1"), task_ref("g2")), task_ref("k")],
    )  # fmt: skip
    store.task("g1", 2, parent="sp", group="g")
    store.task("g2", 4, parent="sp", group="g")
    store.task("k", 10, parent="sp", children=[task_ref("k2")])
    store.task("k2", 11, parent="k")
    expected = (
        "proj.spawner sp SUCCESS 'spawned'\n"
        "├── group g (2 members)\n"
        "│   ├── proj.add g1 SUCCESS 2\n"
        "│   └── proj.add g2 SUCCESS 4\n"
        "└── chain\n"
        "    ├── proj.add k SUCCESS 10\n"
        "    └── proj.add k2 SUCCESS 11"
    )
    assert store.text("sp") == expected
    assert store.text("g2") == expected  # a member climbs through its group to the sender
    assert store.text("k2") == expected


def test_a_task_its_parent_does_not_list_hangs_under_the_parent(store):
    # The parent is still running (its children are stored when it finishes), or it is a
    # taskq task that sent one from its body.
    store.task("p", None, state=states.STARTED, name="proj.outer")
    store.task("s1", 1, parent="p")
    assert store.text("s1") == "chain\n├── proj.outer p STARTED\n└── proj.add s1 SUCCESS 1"


# -- groups --------------------------------------------------------------------------------------


def test_a_saved_group_by_its_id_and_by_a_member(store):
    store.task("m1", 2, group="sg")
    store.task("m2", None, state=states.STARTED, group="sg")
    store.backend.save_group("sg", group_ref("sg", task_ref("m1"), task_ref("m2")).as_tuple())
    expected = "group sg (2 members)\n├── proj.add m1 SUCCESS 2\n└── proj.add m2 STARTED"
    assert store.text("sg") == store.text("m1") == expected
    tree = store.tree("sg")
    assert isinstance(tree, GroupNode)
    assert tree.size == 2
    assert not is_finished(tree)


def test_a_member_of_a_group_that_was_not_saved(store):
    store.task("u1", 2, group="ug")
    assert store.text("u1") == "group ug (not saved; 1 member found)\n└── proj.add u1 SUCCESS 2"


def test_a_group_of_chains(store):
    # group(chain(add(1, 1), add(10)), chain(add(2, 2), add(20))), saved: a member is the
    # chain's last step carrying the first; only the last step has the group id.
    store.task("a1", 2, children=[task_ref("a2")])
    store.task("a2", 12, parent="a1", group="gc")
    store.task("b1", 4, children=[task_ref("b2")])
    store.task("b2", None, state=states.STARTED, parent="b1", group="gc")
    members = (task_ref("a2", task_ref("a1")), task_ref("b2", task_ref("b1")))
    expected = (
        "group gc (2 members)\n"
        "├── chain\n"
        "│   ├── proj.add a1 SUCCESS 2\n"
        "│   └── proj.add a2 SUCCESS 12\n"
        "└── chain\n"
        "    ├── proj.add b1 SUCCESS 4\n"
        "    └── proj.add b2 STARTED"
    )
    store.backend.save_group("gc", group_ref("gc", *members).as_tuple())
    assert store.text("gc") == expected
    assert store.text("a2") == expected
    assert store.text("b1") == expected


def test_an_unsaved_group_of_chains_is_found_from_a_chain(store):
    store.task("a1", 2, children=[task_ref("a2")])
    store.task("a2", 12, parent="a1", group="gu")
    assert store.text("a1") == (
        "group gu (not saved; 1 member found)\n"
        "└── chain\n"
        "    ├── proj.add a1 SUCCESS 2\n"
        "    └── proj.add a2 SUCCESS 12"
    )


# -- chords --------------------------------------------------------------------------------------


def store_chord(store: Store, *, save_header: bool) -> None:
    """chord([add(1, 1), add(2, 2)], tsum()): the body has the header's group id and, as
    parent, the header task that finished last; nothing points from the header to the body."""
    store.task("h1", 2, group="ch")
    store.task("h2", 4, group="ch")
    store.task("body", 6, name="proj.tsum", group="ch", parent="h2")
    if save_header:
        store.backend.save_group("ch", group_ref("ch", task_ref("h1"), task_ref("h2")).as_tuple())


def test_a_chord_from_its_body_with_the_header_saved(store):
    store_chord(store, save_header=True)
    tree = store.tree("body")
    assert isinstance(tree, ChordNode)
    assert tree.id == "ch"
    assert render_text(tree) == (
        "chord ch (2 in header)\n"
        "├── proj.add h1 SUCCESS 2\n"
        "├── proj.add h2 SUCCESS 4\n"
        "└── body: proj.tsum body SUCCESS 6"
    )
    assert (
        store.text("ch")
        == "group ch (2 members)\n├── proj.add h1 SUCCESS 2\n└── proj.add h2 SUCCESS 4"
    )


def test_a_chord_whose_header_celery_kept_only_as_counters(store):
    # Celery's Redis chords save the header only when it holds groups: the body's parent is
    # the one header task the store leads to.
    store_chord(store, save_header=False)
    assert store.text("body") == (
        "chord ch (header not saved; 1 found)\n"
        "├── proj.add h2 SUCCESS 4\n"
        "└── body: proj.tsum body SUCCESS 6"
    )


def test_a_chord_in_a_chain(store):
    # chain(add(1, 1), chord([add(1), add(2)], tsum()), add(10)), as a Celery worker stored
    # it: the first step lists the header group; the body lists the step after the chord.
    store.task("a", 2, children=[group_ref("hg", task_ref("h1"), task_ref("h2"))])
    store.task("h1", 3, parent="a", group="hg")
    store.task("h2", 4, parent="a", group="hg")
    store.task("d", 7, name="proj.tsum", parent="h2", group="hg", children=[task_ref("e")])
    store.task("e", 17, parent="d")
    expected = (
        "chain\n"
        "├── proj.add a SUCCESS 2\n"
        "└── chord hg (2 in header)\n"
        "    ├── proj.add h1 SUCCESS 3\n"
        "    ├── proj.add h2 SUCCESS 4\n"
        "    └── body: chain\n"
        "        ├── proj.tsum d SUCCESS 7\n"
        "        └── proj.add e SUCCESS 17"
    )
    assert store.text("e") == expected
    assert store.text("d") == expected
    # From the first step the body cannot be found: nothing stored points to it.
    assert store.text("a") == (
        "chain\n"
        "├── proj.add a SUCCESS 2\n"
        "└── group hg (2 members)\n"
        "    ├── proj.add h1 SUCCESS 3\n"
        "    └── proj.add h2 SUCCESS 4"
    )


def test_a_chord_in_a_chain_listed_as_its_body_carrying_the_header(store):
    # A step may list the chord it sent as the chord's result: the body's ref, carrying the
    # header group as parent. Then the body is found from the first step too.
    header = group_ref("hg", task_ref("h1"), task_ref("h2"))
    store.task("a", 2, children=[ResultRef("d", header)])
    store.task("h1", 3, parent="a", group="hg")
    store.task("h2", 4, parent="a", group="hg")
    store.task("d", 7, name="proj.tsum", parent="h2", group="hg")
    expected = (
        "chain\n"
        "├── proj.add a SUCCESS 2\n"
        "└── chord hg (2 in header)\n"
        "    ├── proj.add h1 SUCCESS 3\n"
        "    ├── proj.add h2 SUCCESS 4\n"
        "    └── body: proj.tsum d SUCCESS 7"
    )
    assert store.text("a") == store.text("d") == store.text("h1") == expected


def test_the_failure_a_chord_body_gets_marks_it_as_the_body(store):
    # Stored by the chord's bookkeeping with the header's group id and no parent: without the
    # header saved, only the ChordError tells the body from a member.
    store.failed("cb", RuntimeError("x"), group="hx")
    assert (
        store.text("cb")
        == "group hx (not saved; 1 member found)\n└── proj.fail cb FAILURE RuntimeError: x"
    )
    store.backend.store(
        ResultMeta(
            "cb2",
            states.FAILURE,
            {"exc_type": "ChordError", "exc_message": ["Dependency h raised ValueError('boom')"],
             "exc_module": "celery.exceptions"},
            group_id="hy",
        )
    )  # fmt: skip
    assert store.text("cb2") == (
        "chord hy (header not saved; 0 found)\n"
        "└── body: cb2 FAILURE celery.exceptions.ChordError: Dependency h raised ValueError('boom')"
    )


def test_a_chord_in_the_header_of_a_chord(store):
    # chord([chord([add(1, 1), add(2, 2)], tsum()), add(3, 3)], tsum()): the inner body has
    # the outer group's id and the inner header's last task as parent.
    store.task("i1", 2, group="inner")
    store.task("i2", 4, group="inner")
    store.task("ib", 6, name="proj.tsum", group="outer", parent="i2")
    store.task("o2", 6, group="outer")
    store.task("ob", 12, name="proj.tsum", group="outer", parent="ib")
    assert store.text("ob") == (
        "chord outer (header not saved; 1 found)\n"
        "├── chord inner (header not saved; 1 found)\n"
        "│   ├── proj.add i2 SUCCESS 4\n"
        "│   └── body: proj.tsum ib SUCCESS 6\n"
        "└── body: proj.tsum ob SUCCESS 12"
    )


def test_a_chord_whose_header_failed(store):
    store.task("h1", 2, group="cf")
    store.failed("h2", ValueError("boom"), group="cf")
    store.backend.save_group("cf", group_ref("cf", task_ref("h1"), task_ref("h2")).as_tuple())
    # The body's failure is stored by the chord's bookkeeping, with the header's group id.
    error = RuntimeError("Dependency h2 raised ValueError('boom')")
    store.backend.store(ResultMeta.failure("cb", error, group_id="cf"))
    tree = store.tree("cb")
    assert render_text(tree) == (
        "chord cf (2 in header)\n"
        "├── proj.add h1 SUCCESS 2\n"
        "├── proj.fail h2 FAILURE ValueError: boom\n"
        "└── body: cb FAILURE RuntimeError: Dependency h2 raised ValueError('boom')"
    )
    assert has_failed(tree)


# -- limits --------------------------------------------------------------------------------------


def test_a_wide_group_is_cut_with_a_count_of_what_is_left_out(store):
    ids = [f"w{i:02}" for i in range(30)]
    for i, task_id in enumerate(ids):
        if i % 3 == 0:
            store.task(task_id, i, group="wide")  # 10 finished; 8 of them past the first 5
    store.backend.save_group("wide", group_ref("wide", *map(task_ref, ids)).as_tuple())
    tree = store.tree("wide", width=5)
    assert isinstance(tree, GroupNode)
    assert [m.id for m in iter_tasks(tree)] == ids[:5]
    assert tree.hidden == Hidden(25, 8)
    text = render_text(tree)
    assert text.endswith("├── w04 PENDING\n└── ... 25 more (8 finished)")
    assert text.startswith("group wide (30 members)\n├── proj.add w00 SUCCESS 0\n├── w01 PENDING")
    assert to_json(tree)["more"] == {"count": 25, "finished": 8}
    assert not is_finished(tree)


def test_left_out_members_count_when_deciding_whether_all_is_finished(store):
    store.task("x1", 1, group="xg")
    store.task("x2", 2, group="xg")
    store.backend.save_group(
        "xg", group_ref("xg", task_ref("x1"), task_ref("x2"), task_ref("x3")).as_tuple()
    )
    assert store.tree("xg", width=2).hidden == Hidden(1, 0)  # pyright: ignore[reportAttributeAccessIssue]
    assert not is_finished(store.tree("xg", width=2))
    store.task("x3", 3, group="xg")
    assert is_finished(store.tree("xg", width=2))


def test_a_long_chain_is_cut_after_width_steps(store):
    for i in range(8):
        later = [task_ref(f"s{i + 1}")] if i < 7 else []
        store.task(f"s{i}", i, children=later, parent=f"s{i - 1}" if i else None)
    tree = store.tree("s7", width=3)
    assert isinstance(tree, ChainNode)
    assert len(tree.steps) == 3
    assert tree.hidden == Hidden(5, 5)
    assert render_text(tree).splitlines()[-1] == "└── ... 5 more (5 finished)"


def test_depth_counts_fan_outs_not_chain_steps(store):
    # root sends two tasks; each sends a group; the groups' members are depth 3.
    store.task("root", 0, children=[task_ref("l"), task_ref("r")])
    for side in ("l", "r"):
        store.task(side, 1, parent="root", children=[group_ref(f"{side}g", task_ref(f"{side}1"))])
        store.task(f"{side}1", 2, parent=side, group=f"{side}g", children=[task_ref(f"{side}2")])
        store.task(f"{side}2", 3, parent=f"{side}1")
    full = store.text("root", depth=2)
    assert full.splitlines()[:6] == [
        "proj.add root SUCCESS 0",
        "├── chain",
        "│   ├── proj.add l SUCCESS 1",
        "│   └── group lg (1 member)",
        "│       └── chain",
        "│           ├── proj.add l1 SUCCESS 2",
    ]
    cut = store.tree("root", depth=1)
    assert render_text(cut).splitlines()[:5] == [
        "proj.add root SUCCESS 0",
        "├── chain",
        "│   ├── proj.add l SUCCESS 1",
        "│   └── group lg (1 member)",
        "│       └── ... 1 more (1 finished)",
    ]
    cut = store.tree("root", depth=0)
    assert render_text(cut) == "proj.add root SUCCESS 0\n└── ... 2 more (2 finished)"


def test_a_cycle_in_the_store_ends(store):
    store.task("y1", 1, children=[task_ref("y2")], parent="y2")
    store.task("y2", 2, children=[task_ref("y1")], parent="y1")
    tree = store.tree("y1")
    assert {task.id for task in iter_tasks(tree)} == {"y1", "y2"}


# -- drawing ---------------------------------------------------------------------------------------


def test_long_results_are_cut_to_one_line(store):
    store.task("long", "x" * 200)
    store.task("lines", "a\nb")
    assert store.text("long") == f"proj.add long SUCCESS '{'x' * 58}…"
    assert store.text("lines") == "proj.add lines SUCCESS 'a\\nb'"
    assert render_text(store.tree("long"), glyphs=ASCII).endswith("x...")


def test_ascii_glyphs(store):
    store_chain(store)
    assert render_text(store.tree("c1"), glyphs=ASCII) == (
        "chain\n|-- proj.add c1 SUCCESS 3\n|-- proj.add c2 SUCCESS 6\n`-- proj.add c3 SUCCESS 10"
    )


def test_states_other_than_success(store):
    store.task("rv", None, state=states.REVOKED)
    store.task("rt", exception_to_dict(ConnectionError("again")), state=states.RETRY)
    store.task("pr", {"done": 3}, state="PROGRESS")
    store.task("st", {"pid": 1, "hostname": "w"}, state=states.STARTED)
    assert store.text("rv") == "proj.add rv REVOKED revoked"
    assert store.text("rt") == "proj.add rt RETRY ConnectionError: again"
    assert store.text("pr") == "proj.add pr PROGRESS {'done': 3}"
    assert store.text("st") == "proj.add st STARTED"  # what Celery stores while it runs is noise


def test_colors_only_the_state(store):
    store.failed("cf", ValueError("boom"))
    text = render_text(store.tree("cf"), color=True)
    assert text == "proj.fail cf \x1b[31mFAILURE\x1b[0m ValueError: boom"


def test_json_has_the_same_tree(store, capsys):
    store.task("j1", {"n": [1, "a"]}, children=[group_ref("jg", task_ref("j2"), task_ref("j3"))])
    store.failed("j2", ValueError("boom"), parent="j1", group="jg")
    code, out, err = taskq(store, "j2", "--tree", "--json", capsys=capsys)
    assert (code, err) == (1, "")
    assert json.loads(out) == {
        "type": "chain",
        "more": None,
        "steps": [
            {
                "type": "task", "id": "j1", "name": "proj.add", "state": "SUCCESS",
                "result": {"n": [1, "a"]}, "error": None, "children": [], "more": None,
            },
            {
                "type": "group", "id": "jg", "size": 2, "more": None,
                "members": [
                    {
                        "type": "task", "id": "j2", "name": "proj.fail", "state": "FAILURE",
                        "result": None, "error": "ValueError: boom", "children": [],
                        "more": None,
                    },
                    {
                        "type": "task", "id": "j3", "name": None, "state": "PENDING",
                        "result": None, "error": None, "children": [], "more": None,
                    },
                ],
            },
        ],
    }  # fmt: skip


# -- the command -------------------------------------------------------------------------------------


def test_the_command_prints_the_tree_and_exits_0_unless_a_task_failed(store, capsys):
    store_chain(store)
    code, out, err = taskq(store, "c3", "--tree", capsys=capsys)
    assert (code, err) == (0, "")
    assert out == render_text(store.tree("c3")) + "\n"
    code, out, _ = taskq(store, "c2", "--subtree", capsys=capsys)  # --subtree implies --tree
    assert out.splitlines()[1:] == ["├── proj.add c2 SUCCESS 6", "└── proj.add c3 SUCCESS 10"]
    store.failed("bad", ValueError("boom"))
    code, out, _ = taskq(store, "bad", "--tree", capsys=capsys)
    assert (code, out) == (1, "proj.fail bad FAILURE ValueError: boom\n")


def test_the_command_says_why_an_id_not_stored_leads_nowhere(store, capsys):
    code, out, err = taskq(store, "not-yet", "--tree", capsys=capsys)
    assert (code, out) == (0, "not-yet PENDING\n")
    assert err == (
        "not-yet is not in the result store yet (or unknown), so the tree cannot climb from it "
        "to its workflow; try the id of the workflow's first task, or --wait\n"
    )


def test_the_command_limits(store, capsys):
    store_chain(store)
    _code, out, _ = taskq(store, "c1", "--tree", "--width", "1", capsys=capsys)
    assert out == "chain\n├── proj.add c1 SUCCESS 3\n└── ... 2 more (2 finished)\n"
    with pytest.raises(SystemExit) as exited:
        main(["result", "c1", "--tree", "--depth", "0"])
    assert exited.value.code == 2
    assert "--depth: expected a whole number >= 1" in capsys.readouterr().err


def test_wait_until_every_task_is_finished(store, capsys):
    store.task("w1", 3, children=[task_ref("w2")])
    store.task("w2", None, state=states.STARTED, parent="w1")
    finish = threading.Timer(0.6, store.task, ("w2", 6), {"parent": "w1"})
    finish.start()
    try:
        code, out, err = taskq(store, "w1", "--tree", "--wait", "--timeout", "30", capsys=capsys)
    finally:
        finish.cancel()
    # Not a terminal: nothing is redrawn, the finished tree is printed once.
    assert (code, err) == (0, "")
    assert out == "chain\n├── proj.add w1 SUCCESS 3\n└── proj.add w2 SUCCESS 6\n"


def test_wait_with_a_timeout_prints_the_tree_then_fails(store, capsys):
    store.task("t1", None, state=states.STARTED)
    code, out, err = taskq(store, "t1", "--tree", "--timeout", "0.3", capsys=capsys)
    assert code == 1
    assert out == "proj.add t1 STARTED\n"
    assert err == "Error: the workflow of t1 is not finished after 0.3 s\n"


def test_a_rebuild_reads_again_only_what_had_not_finished(store):
    class CountingReads:
        def __init__(self, backend: Any) -> None:
            self.backend, self.reads = backend, []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.backend, name)

        def get(self, task_id: str) -> ResultMeta | None:
            self.reads.append(task_id)
            return self.backend.get(task_id)

    store.task("c1", 3, children=[task_ref("c2")])
    store.task("c2", 6, children=[task_ref("c3")], parent="c1")
    store.task("c3", None, state=states.STARTED, parent="c2")
    counting = CountingReads(store.backend)
    builder = TreeBuilder(counting)  # type: ignore[arg-type]
    builder.build("c3")
    assert sorted(set(counting.reads)) == ["c1", "c2", "c3"]
    counting.reads.clear()
    assert isinstance(builder.build("c3"), ChainNode)
    assert counting.reads == ["c3"]


# -- on a terminal -----------------------------------------------------------------------------------


def run_on_terminal(
    store: Store, *argv: str, when: tuple[str, Callable[[], None]] | None = None, **env: str
) -> str:
    """The command's output on a terminal; ``when=(text, act)`` acts once ``text`` is shown."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskq_cli", "-b", store.url, "--result-backend", store.url,
             "result", *argv],
            stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE,
            env={**os.environ, "TERM": "xterm", **env},
        )  # fmt: skip
        os.close(terminal)  # the child's copy stays open until it exits, then reads end
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
            if when is not None and when[0].encode() in shown:
                when[1]()
                when = None
        _, errors = process.communicate(timeout=TIMEOUT)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert errors == b""
    return shown.decode().replace("\r\n", "\n")


def test_states_are_colored_on_a_terminal(store):
    store.task("tt", 1)
    assert run_on_terminal(store, "tt", "--tree") == "proj.add tt \x1b[32mSUCCESS\x1b[0m 1\n"
    assert run_on_terminal(store, "tt", "--tree", "--no-color") == "proj.add tt SUCCESS 1\n"
    assert run_on_terminal(store, "tt", "--tree", NO_COLOR="1") == "proj.add tt SUCCESS 1\n"


def test_wait_on_a_terminal_redraws_in_place(store):
    store.task("lw", None, state=states.STARTED)
    shown = run_on_terminal(
        store, "lw", "--tree", "--wait", "--timeout", "30",
        when=("STARTED", lambda: store.task("lw", 5)),
    )  # fmt: skip
    drawings = shown.split("\x1b[H\x1b[2J")
    assert drawings[0] == ""
    assert drawings[1] == "proj.add lw \x1b[36mSTARTED\x1b[0m\n"
    assert drawings[-1] == "proj.add lw \x1b[32mSUCCESS\x1b[0m 5\n"
    assert len(drawings) in (3, 4)  # drawn running (again if 0.5 s passed), then finished
    # Finished at once: drawn once, the screen left alone.
    assert run_on_terminal(store, "lw", "--tree", "--wait") == drawings[-1]
