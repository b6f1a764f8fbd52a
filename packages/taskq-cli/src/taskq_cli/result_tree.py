# pyright: strict
"""A workflow read from the result store as a tree: chains, groups, chords and their tasks.

The store keeps Celery's result graph, and only that (facts from Celery 5's backends and
``celery/result.py``, checked against a Celery worker):

- a task's meta lists in ``children`` the results it sent: the next step of its chain, its
  callbacks, what its body sent; a task as ``[[id, parent], None]``, a group as
  ``[[group_id, parent], [members...]]``;
- a task's meta has ``parent_id`` (the task that sent it) and ``group_id`` (the group it is a
  member of); a chord's body has the header's ``group_id`` too, and as ``parent_id`` the header
  task that finished last, which does not list it;
- a group stored with ``GroupResult.save()`` is found with ``restore_group``; its members are
  result tuples, a chain's last step carrying the steps before it as parents, and a chord's
  body carrying its header group.

So the tree is built in two passes. First it climbs from the id given (usually what
``apply_async`` returned: a chain's last step, a chord's body) to the root of the workflow,
remembering the links the climb saw that the walk down cannot (a chord's body, members of a
group that was not saved). Then it walks down from the root. A task with exactly one follower
continues a chain, so a chain is drawn as one list of steps however long it is; a task with
several followers has them as children. Anything the store does not hold reads as PENDING.

Ready metas never change, so a :class:`TreeBuilder` keeps them across builds: ``--wait``
rebuilds the tree every half second and reads again only what is still running.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from taskq_protocol import ProtocolError, ResultMeta, ResultRef, states
from taskq_protocol.exceptions import exception_from_dict, is_exception_dict

if TYPE_CHECKING:
    from taskq.contracts import ResultBackend

__all__ = [
    "Limits",
    "Hidden",
    "TaskNode",
    "ChainNode",
    "GroupNode",
    "ChordNode",
    "Node",
    "TreeBuilder",
    "build_tree",
    "iter_tasks",
    "is_finished",
    "has_failed",
    "DEFAULT_DEPTH",
    "DEFAULT_WIDTH",
]

DEFAULT_DEPTH = 10
DEFAULT_WIDTH = 20
#: Bounds on walking a graph the store may have made cyclic or endless (a task that keeps
#: sending itself): the climb to the root, and the steps of one chain read.
_MAX_CLIMB = 10_000
_MAX_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the tree to draw; ``None`` is no limit.

    ``depth`` counts fan-outs (group members, a task's several children, a chord's header and
    body), not chain steps; ``width`` bounds the members, children or steps drawn under one
    node.
    """

    depth: int | None = DEFAULT_DEPTH
    width: int | None = DEFAULT_WIDTH


@dataclass(frozen=True, slots=True)
class Hidden:
    """Nodes a limit left out: how many, and how many of them have finished."""

    count: int
    finished: int


@dataclass(frozen=True, slots=True)
class TaskNode:
    id: str
    #: The task's name when the store has it (``result_extended``).
    name: str | None
    state: str
    #: The return value (SUCCESS), or what a custom state stored (``update_state`` meta).
    result: Any = None
    #: ``Type: message`` of the exception a FAILURE, RETRY or REVOKED holds.
    error: str | None = None
    #: Set only when the task has several followers; one follower continues a ChainNode.
    children: tuple[Node, ...] = ()
    hidden: Hidden | None = None

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES


@dataclass(frozen=True, slots=True)
class ChainNode:
    """Steps that ran one after another, each sent by the one before."""

    steps: tuple[Node, ...]
    hidden: Hidden | None = None


@dataclass(frozen=True, slots=True)
class GroupNode:
    id: str
    members: tuple[Node, ...]
    #: How many members the group has; ``None`` when the store does not hold the group
    #: (never saved, or a chord header Celery's Redis layout keeps only as counters): the
    #: members are then those the climb from the id found.
    size: int | None
    hidden: Hidden | None = None


@dataclass(frozen=True, slots=True)
class ChordNode:
    header: GroupNode
    body: Node

    @property
    def id(self) -> str:
        """The header group's id, which is the chord's id."""
        return self.header.id


Node: TypeAlias = "TaskNode | ChainNode | GroupNode | ChordNode"


def iter_tasks(node: Node) -> Iterator[TaskNode]:
    """Every task node of the tree, depth first."""
    if isinstance(node, TaskNode):
        yield node
        for child in node.children:
            yield from iter_tasks(child)
    elif isinstance(node, ChainNode):
        for step in node.steps:
            yield from iter_tasks(step)
    elif isinstance(node, GroupNode):
        for member in node.members:
            yield from iter_tasks(member)
    else:
        yield from iter_tasks(node.header)
        yield from iter_tasks(node.body)


def _iter_hidden(node: Node) -> Iterator[Hidden]:
    hidden = node.header.hidden if isinstance(node, ChordNode) else node.hidden
    if hidden is not None:
        yield hidden
    if isinstance(node, TaskNode):
        inner: Sequence[Node] = node.children
    elif isinstance(node, ChainNode):
        inner = node.steps
    elif isinstance(node, GroupNode):
        inner = node.members
    else:
        inner = (*node.header.members, node.body)
    for child in inner:
        yield from _iter_hidden(child)


def is_finished(node: Node) -> bool:
    """Every task drawn is ready, and so is every task a limit left out.

    Of a left-out node only its own tasks are checked (a hidden group's members, a hidden
    chain's steps), not what they sent in turn.
    """
    return all(task.ready for task in iter_tasks(node)) and all(
        hidden.finished == hidden.count for hidden in _iter_hidden(node)
    )


def has_failed(node: Node) -> bool:
    """A task drawn ended in FAILURE or REVOKED."""
    return any(task.state in states.PROPAGATE_STATES for task in iter_tasks(node))


def build_tree(
    backend: ResultBackend, node_id: str, limits: Limits | None = None, *, climb: bool = True
) -> Node:
    """The workflow ``node_id`` (a task or saved group id) belongs to, from its root.

    With ``climb=False`` the tree starts at ``node_id`` itself.
    """
    return TreeBuilder(backend, limits).build(node_id, climb=climb)


class TreeBuilder:
    """Builds the tree of one id, as often as asked, reading only what can still change."""

    def __init__(self, backend: ResultBackend, limits: Limits | None = None) -> None:
        self._backend = backend
        self._limits = limits if limits is not None else Limits()
        self._finished: dict[str, ResultMeta] = {}

    def build(self, node_id: str, *, climb: bool = True) -> Node:
        walk = _Walk(self._backend, self._limits, self._finished)
        return walk.node(walk.root(node_id) if climb else walk.start(node_id), 0)


# -- reading the store ------------------------------------------------------------------------


def _lineage(ref: ResultRef) -> list[ResultRef]:
    """The refs a ref carries, first first (a chain's steps, a chord's header then body)."""
    found: list[ResultRef] = []
    current: ResultRef | None = ref
    while current is not None and len(found) < _MAX_CLIMB:
        found.append(ResultRef(current.id, None, current.children))
        current = current.parent
    found.reverse()
    return found


def _leaf_ids(ref: ResultRef) -> list[str]:
    """The task ids a ref stands for: itself, or a group's members' (recursively)."""
    if ref.children is None:
        return [ref.id]
    return [leaf for member in ref.children for leaf in _leaf_ids(member)]


def _error_line(meta: ResultMeta) -> str:
    """``Type: message`` of the exception a meta holds (module-qualified unless builtin)."""
    value = meta.result
    if is_exception_dict(value):
        try:
            value = exception_from_dict(value)
        except ProtocolError:
            return repr(value)
    if isinstance(value, BaseException):
        cls = type(value)
        name = cls.__qualname__
        if cls.__module__ not in ("builtins", "__main__"):
            name = f"{cls.__module__}.{name}"
        text = str(value)
        return f"{name}: {text}" if text else name
    if value is None:
        return meta.status.lower()
    return repr(value)


def _task_node(
    task_id: str,
    meta: ResultMeta | None,
    children: tuple[Node, ...] = (),
    hidden: Hidden | None = None,
) -> TaskNode:
    if meta is None:
        return TaskNode(task_id, None, states.PENDING, children=children, hidden=hidden)
    result: Any = None
    error: str | None = None
    if meta.status in states.EXCEPTION_STATES:
        error = _error_line(meta)
    elif meta.status == states.SUCCESS or meta.status not in states.ALL_STATES:
        result = meta.result
    return TaskNode(task_id, meta.name, meta.status, result, error, children, hidden)


class _Walk:
    """One build: the store read at most once per id, and the links the climb found."""

    def __init__(
        self, backend: ResultBackend, limits: Limits, finished: dict[str, ResultMeta]
    ) -> None:
        self._backend = backend
        self._limits = limits
        self._finished = finished
        self._metas: dict[str, ResultMeta | None] = {}
        self._groups: dict[str, ResultRef | None] = {}
        #: Followers of a task its stored meta does not list (it has not finished yet, or the
        #: store lost them): task id -> refs.
        self._links: dict[str, list[ResultRef]] = {}
        #: Members of groups the store does not hold, as the climb found them.
        self._members: dict[str, list[ResultRef]] = {}
        #: Chord bodies by header group id: no stored meta points from a header to its body.
        self._bodies: dict[str, ResultRef] = {}
        #: The task that sent a group, by group id, as the climb found it.
        self._senders: dict[str, str] = {}
        self._drawn: set[tuple[bool, str]] = set()

    # -- store access ---------------------------------------------------------------------

    def meta(self, task_id: str) -> ResultMeta | None:
        meta = self._finished.get(task_id)
        if meta is not None:
            return meta
        if task_id in self._metas:
            return self._metas[task_id]
        meta = self._backend.get(task_id)
        self._metas[task_id] = meta
        if meta is not None and meta.ready:
            self._finished[task_id] = meta
        return meta

    def _prefetch(self, task_ids: Iterable[str]) -> None:
        """Read the finished ones of many ids in one call (``wait`` with no time to wait)."""
        unread = [
            i for i in dict.fromkeys(task_ids) if i not in self._finished and i not in self._metas
        ]
        if unread:
            self._finished.update(self._backend.wait(unread, 0))

    def saved_group(self, group_id: str) -> ResultRef | None:
        if group_id not in self._groups:
            raw = self._backend.restore_group(group_id)
            ref: ResultRef | None = None
            if raw is not None:
                try:
                    ref = ResultRef.from_tuple(raw, f"group {group_id}")
                except ProtocolError:
                    ref = None
                if ref is not None and (ref.id != group_id or ref.children is None):
                    ref = None
            self._groups[group_id] = ref
        return self._groups[group_id]

    def _stored_followers(self, meta: ResultMeta | None) -> list[ResultRef]:
        refs: list[ResultRef] = []
        for i, raw in enumerate(meta.children if meta is not None else ()):
            try:
                refs.append(ResultRef.from_tuple(raw, f"meta.children[{i}]"))
            except ProtocolError:
                continue  # one unreadable entry does not hide the others
        return refs

    def _followers(self, task_id: str, meta: ResultMeta | None) -> list[ResultRef]:
        refs = self._stored_followers(meta)
        named = {step.id for ref in refs for step in _lineage(ref)}
        refs.extend(ref for ref in self._links.get(task_id, ()) if ref.id not in named)
        return refs

    def _named(self, meta: ResultMeta) -> list[ResultRef]:
        """Every result a meta's children name: each child and what it carries before it (a
        chord's result listed as its body carrying the header group, a chain's last step)."""
        return [step for ref in self._stored_followers(meta) for step in _lineage(ref)]

    def _link(self, task_id: str, ref: ResultRef) -> None:
        links = self._links.setdefault(task_id, [])
        if all(known.id != ref.id for known in links):
            links.append(ref)

    def _add_member(self, group_id: str, ref: ResultRef) -> None:
        members = self._members.setdefault(group_id, [])
        if all(known.id != ref.id for known in members):
            members.append(ref)

    # -- climbing to the root -------------------------------------------------------------

    def start(self, node_id: str) -> ResultRef:
        """The ref for an id as given: a task, or a group the store holds."""
        if self.meta(node_id) is None and self.saved_group(node_id) is not None:
            return ResultRef(node_id, None, ())
        return ResultRef(node_id)

    def root(self, node_id: str) -> ResultRef:
        """The root of the workflow ``node_id`` belongs to, as far as the store tells."""
        position = self.start(node_id)
        #: A group what is being climbed is a member of, known only below its top: a chain's
        #: last step has the group's id and the steps before it do not; a chord's body has
        #: it and the chord's header tasks do not.
        member_of: str | None = None
        visited: set[tuple[bool, str]] = set()
        while len(visited) < _MAX_CLIMB:
            is_group = position.children is not None
            if (is_group, position.id) in visited:
                break  # a cycle in the store; the last position will do as root
            visited.add((is_group, position.id))
            if is_group:
                parent = self._group_parent(position.id)
                step = None if parent is None else (ResultRef(parent), None)
            else:
                step = self._task_up(position.id)
            if step is None:
                if member_of is None and not is_group:
                    member_of = self._chain_end_group(position.id)
                if member_of is None:
                    return position
                self._add_member(member_of, position)
                position, member_of = ResultRef(member_of, None, ()), None
                continue
            position, in_group = step
            if in_group is not None and member_of is None:
                member_of = in_group
            if position.children is not None and position.id == member_of:
                member_of = None
        return position

    def _task_up(self, task_id: str) -> tuple[ResultRef, str | None] | None:
        """Where a task hangs, its parent task or the group it is a member of (a group ref),
        and a group the climb learns the top of this part belongs to (see ``root``)."""
        meta = self.meta(task_id)
        if meta is None:
            return None
        group_id, parent_id = meta.group_id, meta.parent_id
        parent = self.meta(parent_id) if parent_id else None
        if parent is not None and parent_id is not None:
            listed = {ref.id for ref in self._named(parent)}
            if self._lists_task(parent, task_id):
                # The next step of a chain, a callback, or a task the parent sent.
                return ResultRef(parent_id), None if group_id in listed else group_id
            sent_in = self._group_listing(parent, task_id)
            if sent_in is not None:
                self._senders[sent_in] = parent_id
                return ResultRef(sent_in, None, ()), None
            if group_id is not None and parent.group_id is not None:
                # A chord's body: it has a group id, and as parent the header task that
                # finished last, which does not list it. Its group id is the header's, or,
                # when the chord is itself a group member, that outer group's.
                header = parent.group_id
                self._bodies[header] = ResultRef(task_id)
                return ResultRef(parent_id), None if group_id == header else group_id
        if group_id is None:
            if parent_id is None:
                return None
            # Sent by a task whose meta does not list it (yet): hang it there all the same.
            self._link(parent_id, ResultRef(task_id))
            return ResultRef(parent_id), None
        saved = self.saved_group(group_id)
        if saved is not None and saved.children is not None:
            members = {i for member in saved.children for i in _lineage_ids(member)}
            is_body = task_id not in members
        else:
            is_body = _is_chord_error(meta)
        if is_body:
            # A body stored without parent: the failure a failed header task gives it.
            self._bodies[group_id] = ResultRef(task_id)
            return ResultRef(group_id, None, ()), None
        self._add_member(group_id, ResultRef(task_id))
        return ResultRef(group_id, None, ()), None

    def _chain_end_group(self, task_id: str) -> str | None:
        """The group a chain starting at ``task_id`` is a member of: its last step's group."""
        current, steps = task_id, 0
        while steps < _MAX_STEPS:
            followers = self._followers(current, self.meta(current))
            if len(followers) != 1 or followers[0] != ResultRef(followers[0].id):
                break  # the chain ends, or goes on into a group or chord
            current, steps = followers[0].id, steps + 1
        meta = self.meta(current)
        if not steps or meta is None or meta.group_id is None:
            return None
        parent = self.meta(meta.parent_id) if meta.parent_id else None
        if parent is not None and not self._lists_task(parent, current):
            return None  # the last step is a chord's body, not a group member's end
        return meta.group_id

    def _lists_task(self, parent: ResultMeta, task_id: str) -> bool:
        return any(ref.children is None and ref.id == task_id for ref in self._named(parent))

    def _group_listing(self, parent: ResultMeta, task_id: str) -> str | None:
        """The id of a group ``parent`` sent that holds the task (or a chain ending in it)."""
        for ref in self._named(parent):
            if ref.children is not None and any(
                task_id in _lineage_ids(member) for member in ref.children
            ):
                return ref.id
        return None

    def _group_parent(self, group_id: str) -> str | None:
        """The task that sent a group: the saved group's parent, or its members' parent."""
        if group_id in self._senders:
            return self._senders[group_id]
        saved = self.saved_group(group_id)
        if saved is not None and saved.parent is not None:
            return saved.parent.id
        members = list(saved.children or ()) if saved is not None else []
        members += self._members.get(group_id, [])
        tasks = [
            first for first in (_lineage(member)[0] for member in members) if first.children is None
        ]
        for first in tasks[:3]:  # members share their parent; a few tries are enough
            meta = self.meta(first.id)
            if meta is None or meta.parent_id is None:
                continue
            parent = self.meta(meta.parent_id)
            if parent is None:
                return None
            if all(ref.id != group_id for ref in self._named(parent)):
                self._link(meta.parent_id, ResultRef(group_id, None, ()))
            return meta.parent_id
        return None

    # -- walking down -----------------------------------------------------------------------

    def node(self, ref: ResultRef, depth: int) -> Node:
        if ref.parent is not None:
            # A ref carrying what came before it: record those links, start at the first.
            lineage = _lineage(ref)
            for before, after in pairwise(lineage):
                if before.children is not None:
                    self._bodies.setdefault(before.id, after)
                else:
                    self._link(before.id, after)
            ref = lineage[0]
        if ref.children is not None:
            return self._group(ref, depth)
        return self._chain(ref.id, depth)

    def _chain(self, task_id: str, depth: int) -> Node:
        """A task, and the steps after it while each has exactly one follower."""
        steps: list[Node] = []
        tail: list[ResultRef] = []  # steps past the width, read only to count them
        width = self._limits.width
        current: str | None = task_id
        while current is not None and len(steps) + len(tail) < _MAX_STEPS:
            if (False, current) in self._drawn:
                break  # already drawn: a cycle, or a task two parents list
            self._drawn.add((False, current))
            meta = self.meta(current)
            followers = self._followers(current, meta)
            shown = width is None or len(steps) < width
            if len(followers) != 1:
                if shown:
                    steps.append(self._task(current, meta, followers, depth))
                else:
                    tail.append(ResultRef(current))
                break
            if shown:
                steps.append(_task_node(current, meta))
            else:
                tail.append(ResultRef(current))
            (follower,) = followers
            current = None
            if follower.children is None and follower.parent is None:
                current = follower.id
            elif width is None or len(steps) < width:
                steps.append(self.node(follower, depth))  # a group or chord ends the chain
            else:
                tail.append(follower)
        hidden = self._hidden(tail) if tail else None
        if not steps and hidden is None:  # drawn elsewhere already: the task alone
            return _task_node(task_id, self.meta(task_id))
        if len(steps) == 1 and hidden is None:
            return steps[0]
        return ChainNode(tuple(steps), hidden)

    def _task(
        self, task_id: str, meta: ResultMeta | None, followers: list[ResultRef], depth: int
    ) -> TaskNode:
        shown, hidden = self._cut(followers, depth + 1)
        return _task_node(task_id, meta, tuple(self.node(ref, depth + 1) for ref in shown), hidden)

    def _group(self, ref: ResultRef, depth: int) -> GroupNode | ChordNode:
        members: Sequence[ResultRef]
        size: int | None
        saved = None if ref.children else self.saved_group(ref.id)
        if ref.children:
            members = ref.children  # a group listed in its parent's children
        elif saved is not None:
            members = saved.children or ()
        else:
            members = self._members.get(ref.id, [])
        size = None if not ref.children and saved is None else len(members)
        if (True, ref.id) in self._drawn:
            return GroupNode(ref.id, (), size, self._hidden(members) if members else None)
        self._drawn.add((True, ref.id))
        shown, hidden = self._cut(members, depth + 1)
        self._prefetch(
            step.id for member in shown for step in _lineage(member) if step.children is None
        )
        header = GroupNode(
            ref.id, tuple(self.node(member, depth + 1) for member in shown), size, hidden
        )
        body = self._bodies.get(ref.id)
        if body is None:
            return header
        return ChordNode(header, self.node(body, depth + 1))

    def _cut(
        self, refs: Sequence[ResultRef], depth: int
    ) -> tuple[Sequence[ResultRef], Hidden | None]:
        """The refs to draw at ``depth``, and what the limits leave out."""
        if not refs:
            return refs, None
        if self._limits.depth is not None and depth > self._limits.depth:
            return (), self._hidden(refs)
        width = self._limits.width
        if width is not None and len(refs) > width:
            return refs[:width], self._hidden(refs[width:])
        return refs, None

    def _hidden(self, refs: Sequence[ResultRef]) -> Hidden:
        leaves = [_leaf_ids(ref) for ref in refs]
        self._prefetch(leaf for ids in leaves for leaf in ids)
        finished = sum(1 for ids in leaves if all(self._ready(leaf) for leaf in ids))
        return Hidden(len(refs), finished)

    def _ready(self, task_id: str) -> bool:
        if task_id in self._finished:
            return True
        meta = self._metas.get(task_id)
        return meta is not None and meta.ready


def _is_chord_error(meta: ResultMeta) -> bool:
    """The FAILURE a chord's body gets when a header task failed (Celery's and taskq's name)."""
    value: object = meta.result
    return (
        meta.status == states.FAILURE
        and is_exception_dict(value)
        and cast("Mapping[str, object]", value).get("exc_type") == "ChordError"
    )


def _lineage_ids(ref: ResultRef) -> list[str]:
    return [step.id for step in _lineage(ref)]
