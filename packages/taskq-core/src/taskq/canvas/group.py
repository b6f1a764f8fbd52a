"""``group``: tasks run in parallel; their results come back together as a ``GroupResult``.

Each member is published on its own, with ``group`` (the group id, which is the
``GroupResult``'s id) and ``group_index`` (its position) in its headers; all of them go out in
one ``Publisher.send_many``. Nested groups are flattened into their parent. ``group | task``
is a chord: the task gets the list of every member's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard, cast, overload

from taskq.canvas.signature import Signature, required
from taskq.canvas.tasklist import TaskList
from taskq.canvas.typevars import A1, R2, Arg_contra, R, T
from taskq_protocol.ids import uuid4_text

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.chord import chord
    from taskq.canvas.sending import Plan
    from taskq.result import AsyncResult, GroupResult

__all__ = ["group"]


class group(TaskList[list[T], Arg_contra]):
    """``group(add.s(1, 1), add.s(2, 2))`` or ``group(generator)``; call it to send it."""

    @overload
    def __init__(
        self: group[R, A1],
        tasks: Iterable[Signature[R, A1]],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: group[R, A1],
        *tasks: Signature[R, A1],
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    def __init__(self, *tasks: Any, app: TaskQ | None = None, **options: Any) -> None:
        items: Iterable[Any] = tasks
        first: object = tasks[0] if len(tasks) == 1 else None
        if is_group(first):
            items = first.tasks
        elif first is not None and not isinstance(first, Mapping):
            items = cast("Iterable[Any]", first)
        members = [required(item, app) for item in items]
        if app is None and members:
            app = members[0]._app  # pyright: ignore[reportPrivateUsage]
        super().__init__(
            "celery.group", (), {"tasks": members}, options, subtask_type="group", app=app
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> group[Any, Any]:
        kwargs: Mapping[str, Any] = d.get("kwargs") or {}
        members: Iterable[Any] = kwargs.get("tasks") or ()
        sig = group([required(t, app) for t in members], app=app)
        sig.options = dict(d.get("options") or {})
        sig._restore_fields(d)
        return sig

    def __len__(self) -> int:
        """How many members (as in Celery; so an empty group is falsy)."""
        return len(self.tasks)

    def unrolled(self) -> Signature[Any, Any]:
        """A one-member group is its member (Celery's ``maybe_unroll_group``)."""
        return self.tasks[0] if len(self.tasks) == 1 else self

    def __or__(  # pyright: ignore[reportIncompatibleMethodOverride]
        self: group[T, A1], other: Signature[R2, list[T]]
    ) -> chord[R2, A1]:
        from taskq.canvas.chord import chord as chord_cls

        if not isinstance(other, Signature):  # pyright: ignore[reportUnnecessaryIsInstance]
            return NotImplemented
        if is_group(other) and not other.tasks:
            return cast("chord[R2, A1]", self)  # an empty group adds nothing
        return cast("chord[R2, A1]", chord_cls(self, body=other, app=self._app))

    def __repr__(self) -> str:
        if self.tasks:
            return f"group({self.tasks!r})"
        return "group(<empty>)"

    def link(self, callback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Link ``callback`` to the first member, immutable (it cannot get every result: use
        a chord for that). As in Celery, it may run before the other members finish."""
        return self.tasks[0].link(callback.clone().set(immutable=True))

    def link_error(self, errback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Link ``errback`` to every member (any of them may fail)."""
        for task in self.tasks:
            task.link_error(errback.clone())
        return errback

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group[T]:
        """Give the members increasing countdowns: ``start``, ``start + step``, ... (capped
        at ``stop``)."""
        countdown = start
        for task in self.tasks:
            task.set(countdown=countdown)
            countdown += step
            if stop is not None:
                countdown = min(countdown, stop)
        return cast("group[T]", self)

    # -- freezing ------------------------------------------------------------------------------

    def freeze(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature[Any, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> GroupResult:
        """Fix the group's id and every member's, flattening nested groups in place."""
        from taskq.result import GroupResult

        opts = self.options
        gid = opts.get("task_id")
        if not gid:
            gid = opts["task_id"] = _id or uuid4_text()
        if group_id:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        root_id = opts.setdefault("root_id", root_id)
        parent_id = opts.setdefault("parent_id", parent_id)
        members = list(self.flattened())
        results = [
            task.freeze(
                group_id=group_id,
                chord=chord,
                root_id=root_id,
                parent_id=parent_id,
                group_index=index,
            )
            for index, task in enumerate(members)
        ]
        self.tasks = members
        return GroupResult(str(gid), results, app=self.app)

    def flattened(self, *, copy_plain: bool = True) -> Iterator[Signature[Any, Any]]:
        """Copies of the members, nested groups replaced by their members, empty chains
        dropped (they have no task and no result). ``copy_plain=False``: plain signatures
        as they are (:meth:`plan_members` plans them without copies of their own)."""
        from taskq.canvas.chain import is_chain

        for task in self.tasks:
            if is_group(task):
                yield from task.flattened(copy_plain=copy_plain)
            elif is_chain(task) and not task.tasks:
                continue
            elif not copy_plain and _plain(task):
                yield task
            else:
                yield task.clone()

    def _freeze_gid(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], str, str | None]:
        """The options every member is sent with, the group id (the group's ``task_id``)
        and the root id."""
        merged = dict(self.options)
        self._merge_options(merged, options)
        group_id = merged.pop("task_id", None) or uuid4_text()
        merged["group_id"] = group_id
        return merged, group_id, merged.get("root_id")

    # -- sending -----------------------------------------------------------------------------

    def apply_async(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        add_to_parent: bool = True,
        link: Any = None,
        link_error: Any = None,
        **options: Any,
    ) -> GroupResult:
        """Send every member (one publish for all); returns the GroupResult.

        With ``task_always_eager``, runs every member here instead (:meth:`apply`).
        """
        from taskq.canvas.sending import Plan, record_child

        if link is not None:
            raise TypeError("Cannot add link to group: use a chord")
        if link_error is not None:
            raise TypeError("Cannot add link to group: do that on individual tasks")
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        plan = Plan(app)
        if route_name:
            options["route_name"] = route_name
        result = self.plan(plan, args, kwargs, **options)
        plan.send()
        if add_to_parent:
            record_child(app, result)
        return result

    def plan(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        into: Plan,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        if not self.tasks:
            return self.freeze()
        return self.plan_members(into, self.flattened(copy_plain=False), args, kwargs, **options)

    def plan_members(
        self,
        into: Plan,
        members: Iterable[Signature[Any, Any]],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """:meth:`plan` for ``members``: copies this group may change (a chord passes its
        header's, already flattened and frozen, so they are not copied a second time), or
        plain signatures, planned as copies without making them."""
        from taskq.canvas.chain import is_chain
        from taskq.result import GroupResult

        options = {k: v for k, v in options.items() if v is not None}
        options.pop("add_to_parent", None)
        call_args = [*(args or ()), *self.args]
        member_options, group_id, root_id = self._freeze_gid(options)
        # The group's own options may hold a None, which a member's plan() drops: drop it once.
        member_options = {k: v for k, v in member_options.items() if v is not None}
        trail_unset = into.trail is None
        results: list[AsyncResult[Any] | GroupResult] = []
        for index, task in enumerate(members):
            if _plain(task):
                results.append(
                    task._plan_member(  # pyright: ignore[reportPrivateUsage]
                        into, call_args, kwargs, member_options, group_id, root_id, index
                    )
                )
                continue
            if is_chain(task):
                # A chain's plan() freezes its steps with these options itself. Freezing it
                # first as well gave its partial arguments to its first step twice (freeze()
                # prepends them in place, as Celery's does) and did its work twice.
                options_of_member = {**member_options, "group_index": index}
                results.append(task.plan(into, call_args, kwargs, **options_of_member))
                continue
            task.freeze(group_id=group_id, root_id=root_id, group_index=index)
            results.append(task.plan(into, call_args, kwargs, **member_options))
        result = GroupResult(group_id, results, app=self.app)
        if len(results) == 1 and isinstance(results[0], GroupResult):
            # group(a | group(b, c)): the one member's group is the result (Celery's case).
            result = results[0]
        if trail_unset:
            into.trail = result
        return result

    def __call__(self, *args: Any, **options: Any) -> GroupResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self.apply_async(args, **options)

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self.apply_async(args, kwargs)

    def apply(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Run every member here, in order; returns a GroupResult of their EagerResults."""
        from taskq.result import GroupResult

        if not self.tasks:
            return self.freeze()
        options = {k: v for k, v in options.items() if v is not None}
        member_options, group_id, _ = self._freeze_gid(options)
        call_args = [*(args or ()), *self.args]
        results: list[AsyncResult[Any] | GroupResult] = [
            task.apply(call_args, kwargs, **member_options) for task in self.flattened()
        ]
        return GroupResult(group_id, results, app=self.app)


def _plain(task: Signature[Any, Any]) -> bool:
    """A signature of one task, not a composite (nor the dict of one, which a copy becomes)."""
    return type(task) is Signature and not task.get("subtask_type")


def is_group(value: object) -> TypeGuard[group[Any, Any]]:
    """Whether ``value`` is a group (a type guard: ``isinstance`` cannot fill in the type
    parameters of a group from a plain signature's)."""
    return isinstance(value, group)


Signature.TYPES["group"] = group
