"""taskq's canvas publishes what Celery 5.7's canvas publishes, workflow by workflow.

The same workflow is built with Celery (on kombu's in-memory broker, with a result backend
that records ``set_chord_size`` and saved header groups instead of starting chord_unlock) and
with taskq (on its memory broker); every message each side publishes is read back, reduced to
what a worker acts on (task, group and group_index headers, arguments, ``embed`` with nested
signatures: task, args, kwargs, subtask_type, immutable and the ids, places and links in their
options) and its ids renamed in order of appearance. The two must be equal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from taskq import TaskQ
from taskq.canvas import chain, chord, group
from taskq_testing.inprocess import decode_delivery

pytestmark = pytest.mark.interop

celery = pytest.importorskip("celery")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Options a worker acts on; the rest (reply_to, Celery's add_to_parent, None values) is noise.
_OPTIONS = ("task_id", "group_id", "group_index", "chord", "link", "link_error", "chain")
_COMPOSITE_KWARGS = ("tasks", "header", "body", "task")


class Side:
    """One library's app, its tasks and canvas, and what it published."""

    def __init__(self, ns: SimpleNamespace, drain: Callable[[], list[Any]]) -> None:
        self.ns = ns
        self._drain = drain
        self.chord_sizes: list[tuple[str, int]] = []
        self.saved_groups: list[str] = []

    def drain(self) -> list[dict[str, Any]]:
        return [_message(headers, body) for headers, body, _ in self.raw()]

    def raw(self) -> list[Any]:
        """``(headers, body)`` of every message published since the last call."""
        return self._drain()

    def published(self) -> dict[str, Any]:
        return {
            "messages": self.drain(),
            "chord_sizes": self.chord_sizes,
            "saved_groups": self.saved_groups,
        }


@pytest.fixture
def celery_side(unique_name: str) -> Iterator[Side]:
    capp = celery.Celery(
        "wire", broker="memory://", backend="cache+memory://", set_as_current=False
    )
    capp.conf.task_default_queue = unique_name

    @capp.task(name="proj.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @capp.task(name="proj.tsum", shared=False)
    def tsum(values: list[int]) -> int:
        return sum(values)

    @capp.task(name="proj.echo", shared=False)
    def echo(*args: Any) -> Any:
        return args

    def drain() -> list[Any]:
        found: list[Any] = []
        with capp.connection_for_write() as conn:
            queue = conn.SimpleQueue(unique_name, no_ack=True)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        return found
                    found.append((message.headers, message.decode(), message))
            finally:
                queue.close()

    side = Side(
        SimpleNamespace(
            add=add,
            tsum=tsum,
            echo=echo,
            chain=celery.chain,
            group=celery.group,
            chord=celery.chord,
        ),
        drain,
    )
    backend = capp.backend

    def set_chord_size(group_id: str, size: int) -> None:
        side.chord_sizes.append((group_id, size))

    def apply_chord(header_result_args: Any, body: Any, **kwargs: Any) -> None:
        # What Celery's Redis backend does: save a header whose results include a group's.
        header = capp.GroupResult(*header_result_args)
        if any(isinstance(r, celery.result.GroupResult) for r in header.results):
            side.saved_groups.append(header.id)

    backend.set_chord_size = set_chord_size
    backend.apply_chord = apply_chord
    yield side
    capp.close()


@pytest.fixture
def taskq_side(app: TaskQ) -> Side:
    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="proj.echo")
    def echo(*args: Any) -> Any:
        return args

    def drain() -> list[Any]:
        found: list[Any] = []
        while deliveries := app.transport.fetch(["celery"], 100, 0.0):
            app.transport.ack(deliveries)
            for delivery in deliveries:
                message = decode_delivery(delivery)
                found.append((dict(delivery.envelope.headers), message.encode()[2], delivery))
        return found

    side = Side(
        SimpleNamespace(add=add, tsum=tsum, echo=echo, chain=chain, group=group, chord=chord),
        drain,
    )
    backend = app.backend
    real_set_chord_size, real_save_group = backend.set_chord_size, backend.save_group

    def set_chord_size(group_id: str, size: int) -> None:
        side.chord_sizes.append((group_id, size))
        real_set_chord_size(group_id, size)

    def save_group(group_id: str, result_tuple: list[Any]) -> None:
        side.saved_groups.append(group_id)
        real_save_group(group_id, result_tuple)

    backend.set_chord_size = set_chord_size  # type: ignore[method-assign]
    backend.save_group = save_group  # type: ignore[method-assign]
    return side


def _message(headers: dict[str, Any], body: Any) -> dict[str, Any]:
    args, kwargs, embed = body
    return {
        "task": headers["task"],
        "id": headers["id"],
        "group": headers.get("group"),
        "group_index": headers.get("group_index"),
        "root_id": headers.get("root_id"),
        "parent_id": headers.get("parent_id"),
        "args": args,
        "kwargs": _kwargs(kwargs),
        "callbacks": _signatures(embed.get("callbacks")),
        "errbacks": _signatures(embed.get("errbacks")),
        "chain": _signatures(embed.get("chain")),
        "chord": None if embed.get("chord") is None else _signature(embed["chord"]),
    }


def _signatures(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return _signature(value)
    return [_signature(item) for item in value]


def _signature(sig: dict[str, Any]) -> dict[str, Any]:
    options = sig.get("options") or {}
    kept = {k: options[k] for k in _OPTIONS if options.get(k) not in (None, [])}
    for key in ("chord", "link", "link_error", "chain"):
        if key in kept:
            kept[key] = _signatures(kept[key])
    return {
        "task": sig["task"],
        "args": list(sig.get("args") or ()),
        "kwargs": _kwargs(sig.get("kwargs") or {}),
        "subtask_type": sig.get("subtask_type"),
        "immutable": bool(sig.get("immutable")),
        "options": kept,
    }


def _kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Signatures inside kwargs (a chain's tasks, a chord's header and body, a map's task)."""
    return {
        k: _signatures(v) if k in _COMPOSITE_KWARGS and isinstance(v, (dict, list)) else v
        for k, v in kwargs.items()
    }


def _named(published: dict[str, Any]) -> Any:
    """The structure with every id renamed ``id1``, ``id2``... in order of appearance in the
    messages (the order the two libraries set chord sizes in is theirs to choose)."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"id{len(names) + 1}")

    def renamed(value: Any) -> Any:
        return json.loads(_UUID.sub(rename, json.dumps(value, sort_keys=True)))

    messages = renamed(published.get("messages", []))
    rest = {k: renamed(v) for k, v in published.items() if k != "messages"}
    return {"messages": messages, **{k: sorted(v) for k, v in rest.items()}}


def _compare(celery_side: Side, taskq_side: Side, build: Callable[[Any], Any]) -> Any:
    build(celery_side.ns).apply_async()
    build(taskq_side.ns).apply_async()
    theirs, ours = _named(celery_side.published()), _named(taskq_side.published())
    assert theirs["messages"], "Celery published nothing: the comparison would prove nothing"
    assert ours == theirs
    return ours


WORKFLOWS: dict[str, Callable[[Any], Any]] = {
    "chain": lambda k: k.chain(k.add.s(1, 2), k.add.s(3), k.add.s(4)),
    "pipe": lambda k: k.add.s(1, 2) | k.add.s(3) | k.add.s(4),
    "chain-with-immutable-step": lambda k: k.chain(k.add.s(1, 2), k.add.si(5, 5), k.add.s(1)),
    "group": lambda k: k.group(k.add.s(1, 2), k.add.s(3, 4), k.add.s(5, 6)),
    "group-from-generator": lambda k: k.group(k.add.s(i, i) for i in range(3)),
    "chord": lambda k: k.chord([k.add.s(1, 2), k.add.s(3, 4)], k.tsum.s()),
    "group-piped-into-a-task": lambda k: k.group(k.add.s(1, 2), k.add.s(3, 4)) | k.tsum.s(),
    "chain-of-a-task-a-group-and-a-task": lambda k: k.chain(
        k.add.s(1, 2), k.group(k.add.s(1), k.add.s(2)), k.tsum.s()
    ),
    "chain-ending-in-a-group": lambda k: k.chain(k.add.s(1, 1), k.group(k.add.s(1), k.add.s(2))),
    "chain-of-two-groups": lambda k: k.chain(
        k.group(k.add.s(1, 1), k.add.s(2, 2)), k.group(k.echo.s(), k.echo.s())
    ),
    "group-of-chains": lambda k: k.group(k.add.s(1, 2) | k.add.s(3), k.add.s(4, 5) | k.add.s(6)),
    "chord-in-a-chain": lambda k: k.chain(
        k.add.s(1, 2), k.chord([k.add.s(1), k.add.s(2)], k.tsum.s()), k.add.s(10)
    ),
    "chord-whose-header-holds-a-chord": lambda k: k.chord(
        [k.chord([k.add.s(1, 1), k.add.s(2, 2)], k.tsum.s()), k.add.s(3, 3)], k.tsum.s()
    ),
    "chord-whose-header-ends-in-a-chain": lambda k: k.chord(
        [k.add.s(1, 1), k.add.s(2, 2) | k.add.s(3)], k.tsum.s()
    ),
    "chord-whose-header-chain-ends-in-a-group": lambda k: k.chord(
        [k.add.s(1, 1), k.add.s(2, 2) | k.group(k.add.s(3), k.add.s(4))], k.echo.s()
    ),
    "chord-with-a-chain-body": lambda k: k.chord(
        [k.add.s(1, 1), k.add.s(2, 2)], k.tsum.s() | k.add.s(1)
    ),
    "chord-with-a-group-body": lambda k: k.chord(
        [k.add.s(1, 1), k.add.s(2, 2)], k.group(k.tsum.s(), k.tsum.s())
    ),
    "chord-with-an-empty-header": lambda k: k.chord([], k.tsum.s()),
    "map": lambda k: k.echo.map([1, 2, 3]),
    "starmap": lambda k: k.add.starmap([(1, 2), (3, 4)]),
    "chunks": lambda k: k.add.chunks([(i, i) for i in range(5)], 2),
}


@pytest.mark.parametrize("name", list(WORKFLOWS))
def test_the_same_workflow_publishes_the_same_messages(
    celery_side: Side, taskq_side: Side, name: str
) -> None:
    _compare(celery_side, taskq_side, WORKFLOWS[name])


def test_callbacks_and_errbacks_travel_in_embed(celery_side: Side, taskq_side: Side) -> None:
    for side in (celery_side, taskq_side):
        k = side.ns
        k.add.apply_async(
            (1, 2), link=[k.add.s(10), k.tsum.si([1])], link_error=[k.echo.s()], task_id=None
        )
    theirs, ours = _named(celery_side.published()), _named(taskq_side.published())
    assert ours == theirs
    [message] = ours["messages"]
    assert [c["task"] for c in message["callbacks"]] == ["proj.add", "proj.tsum"]
    assert message["callbacks"][1]["immutable"] is True


def test_a_chord_in_a_chain_travels_whole_in_the_first_message(
    celery_side: Side, taskq_side: Side
) -> None:
    ours = _compare(celery_side, taskq_side, WORKFLOWS["chord-in-a-chain"])
    [first] = ours["messages"]
    body_step, chord_step = first["chain"][0], first["chain"][1]
    assert (chord_step["task"], chord_step["subtask_type"]) == ("celery.chord", "chord")
    assert chord_step["kwargs"]["header"]["subtask_type"] == "group"
    # The chord's id is its header's group id; the header tasks wait for it to be sent.
    assert chord_step["options"]["task_id"] == chord_step["kwargs"]["header"]["options"]["task_id"]
    assert body_step["task"] == "proj.add"


def test_a_nested_chord_reports_its_body_to_the_outer_chord(
    celery_side: Side, taskq_side: Side
) -> None:
    ours = _compare(celery_side, taskq_side, WORKFLOWS["chord-whose-header-holds-a-chord"])
    inner_a, inner_b, outer_part = ours["messages"]
    inner_body = inner_a["chord"]
    # The inner body carries the outer chord: it is the outer chord's part 0.
    assert inner_body["options"]["group_id"] == outer_part["group"]
    assert inner_body["options"]["group_index"] == 0
    assert inner_body["options"]["chord"] == outer_part["chord"]
    assert inner_a["group"] == inner_b["group"] != outer_part["group"]
    assert sorted(size for _, size in ours["chord_sizes"]) == [2, 2]


def test_a_group_nested_in_a_chord_header_keeps_its_order(
    celery_side: Side, taskq_side: Side
) -> None:
    # Celery 5.7 flattens a nested group into the header reversed (``extendleft``), so its
    # body gets [4, 2, 6] for chord([group(1+1, 2+2), 3+3], ...). taskq keeps the order as
    # written: [2, 4, 6]. Everything else about the messages is the same.
    def build(k: Any) -> Any:
        return k.chord([k.group(k.add.s(1, 1), k.add.s(2, 2)), k.add.s(3, 3)], k.tsum.s())

    build(celery_side.ns).apply_async()
    build(taskq_side.ns).apply_async()
    theirs = celery_side.published()["messages"]
    ours = taskq_side.published()["messages"]
    assert [(m["args"], m["group_index"]) for m in theirs] == [
        ([2, 2], 0),
        ([1, 1], 1),
        ([3, 3], 2),
    ]
    assert [(m["args"], m["group_index"]) for m in ours] == [([1, 1], 0), ([2, 2], 1), ([3, 3], 2)]
    for message in (*theirs, *ours):
        message["args"] = message["group_index"] = message["id"] = None
    assert _named({"messages": ours}) == _named({"messages": theirs})


def test_a_workflow_celery_published_completes_on_taskq(app: TaskQ, celery_side: Side) -> None:
    """Celery's own messages (a chain holding a chord) run through taskq's tracer to the end."""
    from taskq_protocol import Envelope
    from taskq_testing.inprocess import run_queued

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    k = celery_side.ns
    last = k.chain(k.add.s(1, 2), k.group(k.add.s(1), k.add.s(2)), k.tsum.s(), k.add.s(100))
    last = last.apply_async()
    for headers, _, message in celery_side.raw():
        body = message.body if isinstance(message.body, bytes) else message.body.encode()
        envelope = Envelope.create(
            body,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=headers,
            properties=dict(message.properties),
            routing_key="celery",
        )
        app.transport.publish("celery", envelope)
    run_queued(app)
    # (1+2) -> [3+1, 3+2] -> 9 -> 109
    assert app.AsyncResult(last.id).get(timeout=1) == 109
