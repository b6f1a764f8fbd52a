"""``chain``: tasks run one after the other, each result the next one's first argument.

``chain(a, b, c)`` (or ``a | b | c``) publishes only ``a``; the rest travel in its message as
``embed.chain``, frozen (ids fixed) and *reversed*, so a worker pops the next step off the end
and sends it with the result. As in Celery, building a chain normalises it: nested chains are
spliced in, a group followed by a task becomes a chord (``chain(group(...), total.s())`` waits
for every member), and a step after a chord joins that chord's body.

A type checker checks that each step accepts what the one before returns: ``chain(add.s(1, 2),
upper.s())`` is an error when ``upper`` takes a ``str`` and ``add`` returns an ``int``. The
overloads cover chains of up to eight steps; longer ones are not checked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard, cast, overload

from taskq.canvas.signature import Signature, as_signature_list, maybe_signature, required
from taskq.canvas.tasklist import TaskList
from taskq.canvas.typevars import A1, R1, R2, R3, R4, R5, R6, R7, R8, Arg_contra, R_co

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.chord import chord
    from taskq.canvas.sending import Plan
    from taskq.result import AsyncResult, EagerResult, GroupResult

__all__ = ["chain", "append_step", "unroll_chord_bodies", "strip_chord_header_links"]

# Options a chain consumes itself when it runs instead of passing them to its first task.
_RUN_OPTIONS = frozenset(
    {"chord", "group_id", "group_index", "link", "link_error", "parent_id", "root_id", "task_id"}
)


class chain(TaskList[R_co, Arg_contra]):
    """``chain(a, b, c)`` or ``a | b | c``; its result is the last task's, with ``.parent``s."""

    @overload
    def __init__(self: chain[Any, Any], /, *, app: TaskQ | None = None, **options: Any) -> None: ...
    @overload
    def __init__(
        self: chain[R1, A1],
        s1: Signature[R1, A1],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R2, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R3, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R4, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        s4: Signature[R4, R3],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R5, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        s4: Signature[R4, R3],
        s5: Signature[R5, R4],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R6, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        s4: Signature[R4, R3],
        s5: Signature[R5, R4],
        s6: Signature[R6, R5],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R7, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        s4: Signature[R4, R3],
        s5: Signature[R5, R4],
        s6: Signature[R6, R5],
        s7: Signature[R7, R6],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R8, A1],
        s1: Signature[R1, A1],
        s2: Signature[R2, R1],
        s3: Signature[R3, R2],
        s4: Signature[R4, R3],
        s5: Signature[R5, R4],
        s6: Signature[R6, R5],
        s7: Signature[R7, R6],
        s8: Signature[R8, R7],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[Any, Any],
        s1: Signature[Any, Any],
        s2: Signature[Any, Any],
        s3: Signature[Any, Any],
        s4: Signature[Any, Any],
        s5: Signature[Any, Any],
        s6: Signature[Any, Any],
        s7: Signature[Any, Any],
        s8: Signature[Any, Any],
        s9: Signature[Any, Any],
        /,
        *more: Signature[Any, Any],
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[Any, Any],
        tasks: Iterable[Signature[Any, Any] | Mapping[str, Any]],
        /,
        *,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    def __init__(self, *tasks: Any, app: TaskQ | None = None, **options: Any) -> None:
        items: Iterable[Any] = tasks
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            items = cast("Iterable[Any]", tasks[0])  # chain(generator) / chain([a, b])
        steps: list[Signature[Any, Any]] = []
        for item in items:
            append_step(steps, required(item, app))
        if app is None and steps:
            app = steps[0]._app  # pyright: ignore[reportPrivateUsage]
        super().__init__(
            "celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> chain[Any, Any]:
        """A chain as it arrived in a message: its steps kept as they are (not re-folded)."""
        sig = chain(app=app, **(d.get("options") or {}))
        kwargs: Mapping[str, Any] = d.get("kwargs") or {}
        steps: Iterable[Any] = kwargs.get("tasks") or ()
        sig.kwargs = {**kwargs, "tasks": [required(t, app) for t in steps]}
        sig._restore_fields(d)
        return sig

    def unchain_tasks(self) -> list[Signature[Any, Any]]:
        """Copies of the steps, the chain's ``link`` on the last and its ``link_error`` on each
        (a step that fails ends the chain, so each must call the chain's errbacks)."""
        tasks = [task.clone() for task in self.tasks]
        if not tasks:
            return tasks
        for callback in as_signature_list(self.options.get("link"), self._app) or []:
            tasks[-1].link(callback)
        for errback in as_signature_list(self.options.get("link_error"), self._app) or []:
            for task in tasks:
                task.link_error(errback)
        return tasks

    def __or__(self, other: Signature[R2, R_co]) -> chain[R2, Arg_contra]:  # pyright: ignore[reportIncompatibleMethodOverride]
        if not isinstance(other, Signature):  # pyright: ignore[reportUnnecessaryIsInstance]
            return NotImplemented
        steps = [task.clone() for task in self.tasks]
        append_step(steps, other)
        return cast("chain[R2, Arg_contra]", chain(steps, app=self._app, **self.options))

    def __repr__(self) -> str:
        if not self.tasks:
            return "<chain: empty>"
        return " | ".join(repr(task) for task in self.tasks)

    # -- freezing ------------------------------------------------------------------------------

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature[Any, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> AsyncResult[R_co]:
        """Freeze every step in place; returns the last step's result (with its parents)."""
        _, results = self.prepare_steps(
            self.args,
            self.kwargs.get("kwargs") or {},
            self.tasks,
            root_id=root_id,
            parent_id=parent_id,
            last_task_id=_id,
            group_id=group_id,
            chord_body=chord,
            group_index=group_index,
            clone=False,
        )
        return cast("AsyncResult[R_co]", results[0])

    def prepare_steps(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        tasks: Sequence[Signature[Any, Any]],
        *,
        root_id: str | None = None,
        parent_id: str | None = None,
        link_error: Any = None,
        last_task_id: str | None = None,
        group_id: str | None = None,
        chord_body: Signature[Any, Any] | None = None,
        group_index: int | None = None,
        clone: bool = True,
    ) -> tuple[list[Signature[Any, Any]], list[AsyncResult[Any] | GroupResult]]:
        """The frozen steps and their results, both *last step first* (the wire's order).

        Nested chains are spliced in, a group followed by a step becomes a chord with that step
        as its body, a chord whose body is a chain led by a task hands the rest of that chain
        back to this one, the first step gets the partial ``args``/``kwargs``, and the last
        step takes the place in a group or chord the chain itself has (Celery's
        ``prepare_steps``, whose results this mirrors).
        """
        from taskq.canvas.chord import chord as chord_cls
        from taskq.canvas.chord import is_chord
        from taskq.canvas.group import is_group

        app = self.app
        steps: deque[Signature[Any, Any]] = deque(tasks)
        _normalise_head(steps, clone)
        prepared: list[Signature[Any, Any]] = []
        results: list[AsyncResult[Any] | GroupResult] = []
        prev_task: Signature[Any, Any] | None = None
        prev_res: AsyncResult[Any] | GroupResult | None = None
        errbacks = as_signature_list(link_error, app) or []
        while steps:
            task = required(steps.pop(), app)
            is_first, is_last = not steps, not prepared
            if is_group(task):
                task = task.unrolled()
                if _is_empty_group(task) and (steps or prev_task is not None):
                    continue
            if clone and is_chord(task) and _is_chain_led_by_task(task.body):
                steps.extend(task.unroll_body())
                continue
            if clone:
                task = task.clone(args, kwargs) if is_first else task.clone()
            elif is_first:
                task.args = [*args, *task.args]
            if is_chain(task):
                steps.extend(task.tasks)
                continue
            if is_group(task) and prev_task is not None:
                # group | task: a chord, so the step waits for every member.
                prepared.pop()
                body_res = results.pop()
                upgraded: chord[Any, Any] = chord_cls(
                    task, body=prev_task, root_id=root_id, app=app
                )
                task = upgraded
                prev_task = prepared[-1] if prepared else None
                # The steps after the body now follow the chord's result: unlink them from the
                # body's, or the body's id would be in the result graph twice.
                follower: AsyncResult[Any] | GroupResult | None = results[-1] if results else None
                while follower is not None and follower.parent is not body_res:
                    follower = follower.parent
                if follower is not None:
                    follower.parent = None
                    prev_res = follower
            if is_last:
                res = task.freeze(
                    last_task_id,
                    root_id=root_id,
                    group_id=group_id,
                    chord=chord_body,
                    group_index=group_index,
                )
            else:
                res = task.freeze(root_id=root_id)
            if prev_task is not None and prev_res is not None and prev_res.parent is None:
                prev_res.parent = res
            for errback in errbacks:
                task.link_error(errback)
                if is_chord(task):
                    task.body.link_error(errback)
            prepared.append(task)
            results.append(res)
            prev_task, prev_res = task, res
            if is_chord(task):
                # What follows a chord follows its header's result, the root of its body's.
                root: AsyncResult[Any] | GroupResult = res
                while root.parent is not None:
                    root = root.parent
                prev_res = root
        if results:
            self.id = results[0].id
        if clone:
            for task in prepared:
                strip_chord_header_links(task)
        return prepared, results

    # -- sending -----------------------------------------------------------------------------

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> AsyncResult[R_co]:
        """Send the first step, carrying the rest; returns the last step's result.

        With ``task_always_eager``, runs every step here instead (:meth:`apply`).
        """
        from taskq.canvas.sending import Plan, record_child

        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        plan = Plan(app)
        result = self.plan(plan, args, kwargs, **options)
        plan.send()
        record_child(app, plan.trail)
        return cast("AsyncResult[R_co]", result)

    def plan(
        self,
        into: Plan,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R_co] | GroupResult:
        if not self.tasks:
            raise ValueError("an empty chain has nothing to send")
        merged = {**self.options, **{k: v for k, v in options.items() if v is not None}}
        run = {key: merged.pop(key) for key in _RUN_OPTIONS if key in merged}
        merged.pop("route_name", None)
        call_args = [*(args or ()), *self.args] if args and not self.immutable else self.args
        tasks, results = self.prepare_steps(
            call_args,
            kwargs or {},
            self.tasks,
            root_id=run.get("root_id"),
            parent_id=run.get("parent_id"),
            link_error=run.get("link_error"),
            last_task_id=run.get("task_id"),
            group_id=run.get("group_id"),
            chord_body=maybe_signature(run.get("chord"), self._app),
            group_index=run.get("group_index"),
        )
        if run.get("link"):
            tasks[0].extend_list_option("link", run["link"])
        first = tasks.pop()
        merged["chain"] = [*(merged.get("chain") or ()), *tasks]
        if run.get("parent_id"):
            merged["parent_id"] = run["parent_id"]
        first_result = first.plan(into, **merged)
        if not tasks:
            return first_result
        return results[0]

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult[R_co]:
        """Celery's ``chain(...)(*args)``: send it, the args going to the first step."""
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R_co]:
        """Run every step here, in order; returns the last step's EagerResult.

        A chain-level ``link`` runs once, after the last step; ``link_error`` stays per step.
        A step that is ignored or rejected ends the chain.
        """
        from taskq.result import EagerResult
        from taskq_protocol import states

        tasks = list(self.tasks)
        task_options = {**self.options, **options}
        link = task_options.pop("link", None)
        non_empty = [i for i, task in enumerate(tasks) if not _is_empty_group(task)]
        last_index = non_empty[-1] if non_empty else len(tasks) - 1
        last: Any = None
        first_args: Sequence[Any] | None = args
        first_kwargs: Mapping[str, Any] | None = kwargs
        for index, task in enumerate(tasks):
            if _is_empty_group(task) and (index < len(tasks) - 1 or last is not None):
                continue
            step = task.clone()
            if link and index == last_index:
                target = cast("chord[Any, Any]", step).body if _is_chord(step) else step
                target.extend_list_option("link", link)
            call_args = (last.get(),) if last is not None else first_args
            res: Any = step.apply(call_args, first_kwargs, **task_options)
            res.parent, last = last, res
            first_args, first_kwargs = None, None
            if isinstance(res, EagerResult) and res.state in (states.IGNORED, states.REJECTED):
                break
        return cast("EagerResult[R_co]", last)


# -- building rules shared with | ----------------------------------------------------------------


def append_step(steps: list[Signature[Any, Any]], other: Signature[Any, Any]) -> None:
    """Add ``other`` to a chain's ``steps`` by Celery's rules for ``|``.

    An empty group adds nothing and a one-member group is its member; a chain adds its steps
    (its errbacks on each, its callbacks on the last); a group after a group stays a group
    step (it becomes the first group's chord body when the chain runs); a task after a group
    turns the group into a chord; a step after a chord (other than a chord) joins its body.
    """
    from taskq.canvas.chord import chord as chord_cls
    from taskq.canvas.chord import is_chord
    from taskq.canvas.group import is_group

    if is_group(other):
        if _is_empty_group(other):
            return
        other = other.unrolled()
    if is_chain(other):
        for task in other.unchain_tasks():
            append_step(steps, task)
        return
    last = steps[-1] if steps else None
    if is_group(other):
        if is_chord(last):
            steps[-1] = last.with_body(last.body | other)
        else:
            steps.append(other)
        return
    if is_group(last):
        steps[-1] = chord_cls(last, body=other, app=last._app)  # pyright: ignore[reportPrivateUsage]
    elif is_chord(last) and not is_chord(other):
        steps[-1] = last.with_body(last.body | other)
    else:
        steps.append(other)


def _normalise_head(steps: deque[Signature[Any, Any]], clone: bool) -> None:
    """Make the first real task the last one popped, so it receives the partial arguments:
    nested chains at the head are spliced in and leading empty groups dropped (one stays when
    nothing else does, so the chain still has a result)."""
    from taskq.canvas.group import is_group

    stripped: Signature[Any, Any] | None = None
    while steps:
        head = required(steps[0])
        steps[0] = head
        if is_chain(head):
            steps.popleft()
            inner = head.clone() if clone else head
            steps.extendleft(reversed(inner.tasks))
            continue
        if is_group(head):
            head = steps[0] = head.unrolled()
            if len(steps) > 1 and _is_empty_group(head):
                stripped = steps.popleft()
                continue
        break
    if stripped is not None and not steps:
        steps.append(stripped)


def _is_empty_group(task: Signature[Any, Any]) -> bool:
    from taskq.canvas.group import is_group

    return is_group(task) and not task.tasks


def _is_chord(task: Signature[Any, Any]) -> bool:
    from taskq.canvas.chord import is_chord

    return is_chord(task)


def _is_chain_led_by_task(body: Signature[Any, Any] | None) -> bool:
    """A chain whose first step is not a group: a chord body the chain can take back.

    A body led by a group runs its following steps once per member, so it stays whole.
    """
    from taskq.canvas.group import is_group

    return is_chain(body) and bool(body.tasks) and not is_group(body.tasks[0])


def first_task_options(sig: chain[Any, Any]) -> dict[str, Any]:
    """The options a chain passes on to its first task when it runs."""
    return {k: v for k, v in sig.options.items() if k not in _RUN_OPTIONS}


def unroll_chord_bodies(sig: chain[Any, Any]) -> None:
    """Split chords inside this chain whose bodies are chains led by a task, in place (call it
    on a copy): every header task carries its chord's body, so a body holding the rest of a
    chain would be copied into every header message."""
    from taskq.canvas.chord import is_chord

    pending: deque[Signature[Any, Any]] = deque(sig.tasks)
    tasks: list[Signature[Any, Any]] = []
    while pending:
        task = pending.popleft()
        if is_chain(task):
            task = task.clone()
            unroll_chord_bodies(task)
        if is_chord(task) and _is_chain_led_by_task(task.body):
            pending.extendleft(reversed(task.unroll_body()))
        else:
            tasks.append(task)
    sig.tasks = tasks


def strip_chord_header_links(sig: Signature[Any, Any]) -> None:
    """Drop the body a frozen chord put on each of its header tasks, in a copy about to be
    sent: the chord carries its body once in its own kwargs and puts it back on the header
    tasks when it runs, so nested chords do not multiply message sizes."""
    from taskq.canvas.chord import is_chord
    from taskq.canvas.group import is_group

    if is_chord(sig):
        _clear_chord_option(sig.header)
        strip_chord_header_links(sig.header)
        strip_chord_header_links(sig.body)
    elif is_group(sig) or is_chain(sig):
        for task in sig.tasks:
            strip_chord_header_links(task)


def _clear_chord_option(sig: Signature[Any, Any]) -> None:
    """Remove the chord body from the tasks of ``sig`` that report to a chord."""
    from taskq.canvas.chord import is_chord
    from taskq.canvas.group import is_group

    sig.options.pop("chord", None)
    if is_group(sig):
        for task in sig.tasks:
            _clear_chord_option(task)
    elif is_chain(sig) and sig.tasks:
        _clear_chord_option(sig.tasks[-1])
    elif is_chord(sig):
        _clear_chord_option(sig.body)


def is_chain(value: object) -> TypeGuard[chain[Any, Any]]:
    """Whether ``value`` is a chain (a type guard: ``isinstance`` cannot fill in the type
    parameters of a chain from a plain signature's)."""
    return isinstance(value, chain)


Signature.TYPES["chain"] = chain
