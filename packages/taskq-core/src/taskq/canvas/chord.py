"""``chord``: a group (the header) whose results all go to one more task (the body).

Sending a chord freezes the body first (its id is the chord's result), then publishes every
header task with ``group`` (the header's group id), ``group_index`` and the body in
``embed.chord``, after telling the result backend how many parts to wait for
(``set_chord_size``). The worker that reports the last part sends the body with the list of
results, in header order. A header with no tasks sends the body at once, with ``[]``.

Nesting follows Celery: groups inside a header are flattened into it; a chain in a header
counts once, by its last task (which reports to the chord); a chord in a header counts once,
by its body; a header whose results include a group's results is saved (``save_group``) so the
body gets the same nested lists Celery gives it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard, cast, overload

from taskq.canvas.signature import Signature, as_signature_list, maybe_signature, required
from taskq.canvas.typevars import A1, R1, R2, Arg_contra, R_co, T
from taskq_protocol.ids import uuid4_text

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.group import group
    from taskq.canvas.sending import Plan
    from taskq.result import AsyncResult, EagerResult, GroupResult

__all__ = ["chord", "chord_size"]


class chord(Signature[R_co, Arg_contra]):
    """``chord(header, body)``, ``chord(header)(body)`` or ``group(...) | body``."""

    @overload
    def __init__(
        self: chord[R2, A1],
        header: group[T, A1] | Iterable[Signature[T, A1]],
        body: Signature[R2, list[T]],
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: chord[Any, A1],
        header: group[T, A1] | Iterable[Signature[T, A1]],
        body: None = None,
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None: ...
    def __init__(
        self,
        header: Any,
        body: Any = None,
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None:
        members = _header_tasks(header, app)
        body_sig = maybe_signature(body, app)
        if app is None:
            first = members[0] if isinstance(members, list) and members else body_sig
            app = None if first is None else first._app  # pyright: ignore[reportPrivateUsage]
        super().__init__(
            task,
            args,
            {**(kwargs or {"kwargs": {}}), "header": members, "body": body_sig},
            options,
            subtask_type="chord",
            app=app,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> chord[Any, Any]:
        kwargs = dict(d.get("kwargs") or {})
        header: Any = kwargs.pop("header", None)
        body: Any = kwargs.pop("body", None)
        if isinstance(header, Mapping) and not isinstance(header, Signature):
            # A frozen chord's header is a group: kept as one, with its id.
            header = required(header, app)
        sig = chord(
            cast("Any", header),
            body,
            task=str(d.get("task") or "celery.chord"),
            args=d.get("args") or (),
            kwargs=kwargs or None,
            app=app,
            **(d.get("options") or {}),
        )
        sig.immutable = bool(d.get("immutable", False))
        return sig

    # -- fields ------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Signature[Any, Any]] | group[Any, Any]:
        """The header: a list of signatures, or (once frozen) a group."""
        return cast("list[Signature[Any, Any]] | group[Any, Any]", self.kwargs["header"])

    @tasks.setter
    def tasks(self, value: Iterable[Signature[Any, Any]] | group[Any, Any]) -> None:
        self.kwargs["header"] = _header_tasks(value, self._app)

    @property
    def header(self) -> group[Any, Any]:
        """The header as a group (a list header becomes one, in place, as freezing does)."""
        from taskq.canvas.group import group, is_group

        tasks = self.tasks
        if not is_group(tasks):
            tasks = group(tasks, app=self._app)
            self.kwargs["header"] = tasks
        return tasks

    @property
    def body(self) -> Signature[Any, Any]:
        body = self.kwargs.get("body")
        if body is None:
            raise ValueError(f"{self!r} has no body")
        return cast("Signature[Any, Any]", body)

    @body.setter
    def body(self, value: Signature[Any, Any]) -> None:
        self.kwargs["body"] = value

    @property
    def app(self) -> TaskQ:
        if self._app is None:
            tasks = self.tasks
            members = tasks.tasks if not isinstance(tasks, list) else tasks
            if members:
                return members[0].app
            if self.kwargs.get("body") is not None:
                return self.body.app
        return super().app

    def _clone_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        header = kwargs.get("header")
        if isinstance(header, Signature):
            header = cast("Signature[Any, Any]", header).clone()
        elif header is not None:
            header = [required(t, self._app).clone() for t in cast("Iterable[Any]", header)]
        body = kwargs.get("body")
        return {
            **kwargs,
            "header": header,
            "body": None if body is None else required(body, self._app).clone(),
        }

    def with_body(self, body: Signature[Any, Any]) -> chord[Any, Any]:
        """A copy with another body."""
        sig = self.clone()
        sig.body = body
        return sig

    def __len__(self) -> int:
        """The number of tasks the chord waits for (nested headers counted)."""
        return chord_size(self.tasks)

    def __repr__(self) -> str:
        if self.kwargs.get("body") is None:
            return f"<chord without body: {self.tasks!r}>"
        return f"%{self.body.task}({self.tasks!r})"

    def __or__(  # pyright: ignore[reportIncompatibleMethodOverride]
        self: chord[R1, A1], other: Signature[R2, R1]
    ) -> Signature[R2, A1]:
        from taskq.canvas.chain import chain, is_chain
        from taskq.canvas.group import is_group

        if not isinstance(other, Signature):  # pyright: ignore[reportUnnecessaryIsInstance]
            return NotImplemented
        if is_group(other) and len(other.tasks) == 1:
            other = other.tasks[0]
        if not (is_group(other) or is_chain(other)):
            # chord | task: the task follows the body.
            return cast("Signature[R2, A1]", self.with_body(self.body | other))
        return cast("Signature[R2, A1]", chain(self, other, app=self._app))

    def link(self, callback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Link ``callback`` to the body (it gets the body's result)."""
        self.body.link(callback)
        return callback

    def link_error(self, errback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Link ``errback`` to the body, which fails when any header task fails (nested chords
        in the header link it themselves)."""
        tasks = self.tasks
        for task in tasks.tasks if not isinstance(tasks, list) else tasks:
            if is_chord(task):
                task.link_error(errback)
        self.body.link_error(errback)
        return errback

    def set_immutable(self, immutable: bool) -> None:
        """Set the header tasks' immutability (the body keeps its own)."""
        tasks = self.tasks
        for task in tasks.tasks if not isinstance(tasks, list) else tasks:
            task.set_immutable(immutable)

    def unroll_body(self) -> list[Signature[Any, Any]]:
        """``chord(h, a | b | c)`` as ``[chord(h, a), b, c]`` (see ``unroll_chord_bodies``)."""
        from taskq.canvas.chain import chain, first_task_options

        sig = self.clone()
        body = cast("chain[Any, Any]", sig.body)
        steps = body.unchain_tasks()
        sig.body = steps[0].clone(**first_task_options(body))
        return [sig, *steps[1:]]

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
        """Fix the header's ids (its group id is the chord's id) and the body's; returns the
        body's result, whose first parent is the header's GroupResult."""
        header = self.header
        header_result = header.freeze(parent_id=parent_id, root_id=root_id, chord=self.body)
        self.id = header.id
        body_result = self.body.freeze(
            _id, root_id=root_id, chord=chord, group_id=group_id, group_index=group_index
        )
        _attach_to(body_result, header_result)
        return cast("AsyncResult[R_co]", body_result)

    # -- sending -----------------------------------------------------------------------------

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult[R_co]:
        """Send the header (after setting the chord size); returns the body's result.

        ``countdown``/``eta`` delay the header; ``link``/``link_error`` go to the body. With
        ``task_always_eager``, runs the header and then the body here (:meth:`apply`).
        """
        from taskq.canvas.sending import Plan, record_child

        app = self.app
        if app.conf.task_always_eager:
            call_kwargs = dict(kwargs or {})
            body = required(call_kwargs.pop("body", None) or self.body, self._app)
            callbacks = {k: options.pop(k) for k in ("link", "link_error") if k in options}
            body = _add_body_callbacks(body, {**self.options, **callbacks})
            return self.apply(args, call_kwargs, body=body, **options)
        plan = Plan(app)
        if route_name:
            options["route_name"] = route_name
        result = self.plan(plan, args, kwargs, task_id=task_id, **options)
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
        from taskq.canvas.chain import (
            is_chain,
            strip_chord_header_links,
            unroll_chord_bodies,
        )
        from taskq.canvas.group import group, is_group
        from taskq.result import GroupResult

        app = self.app
        options = {k: v for k, v in options.items() if v is not None}
        options.pop("add_to_parent", None)
        call_args = [*(args or ()), *self.args] if args and not self.immutable else self.args
        call_kwargs = dict(kwargs or {})
        body = required(call_kwargs.pop("body", None) or self.body, self._app)
        own_kwargs: Mapping[str, Any] = self.kwargs.get("kwargs") or {}
        header_kwargs = {**own_kwargs, **call_kwargs}
        merged = {**self.options, **options}
        # countdown/eta delay the header, not the body (Celery #7851).
        header_delay = {k: merged.pop(k) for k in ("countdown", "eta") if k in merged}
        task_id = merged.pop("task_id", None)
        tasks = self.tasks
        header = (
            tasks.clone()
            if is_group(tasks)
            else group(tasks, app=app, task_id=self.options.get("task_id") or uuid4_text())
        )
        group_id = header.options.get("task_id") or uuid4_text()
        root_id = body.options.get("root_id")
        body = _add_body_callbacks(body, merged)
        body = body.clone(**_body_options(merged))
        if is_chain(body):
            unroll_chord_bodies(body)
        body_result = body.freeze(task_id or uuid4_text(), group_id=group_id, root_id=root_id)
        strip_chord_header_links(body)
        # The header reports to this chord: not to the chain or chord the chord is part of
        # (the body carries those now), and not at the chord's own place in a group.
        for key in ("chain", "chord", "task_id", "group_index"):
            merged.pop(key, None)
        header.options["task_id"] = group_id
        header_result = header.freeze(group_id=group_id, chord=body, root_id=root_id)
        if header.tasks:
            size = chord_size(header.tasks)
            backend = app.backend
            into.before_publish(lambda: backend.set_chord_size(group_id, size))
            if any(isinstance(r, GroupResult) for r in header_result.results):
                # The body must get nested lists back: the worker that completes the chord
                # reads this saved group to rebuild them (Celery's ``apply_chord``).
                into.before_publish(lambda: header_result.save(backend))
            header_result = header.plan_members(
                into,
                header.tasks,
                call_args,
                header_kwargs,
                task_id=group_id,
                **merged,
                **header_delay,
            )
        else:
            body.plan(into, ([],))
        _attach_to(body_result, header_result)
        return body_result

    def __call__(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, body: Signature[Any, Any] | None = None, **options: Any
    ) -> AsyncResult[R_co]:
        """``chord(header)(body)``: send it with that body."""
        return self.apply_async((), {"body": body} if body is not None else {}, **options)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        propagate: bool = True,
        body: Signature[Any, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R_co]:
        """Run the header here, then the body with its results."""
        from taskq.canvas.group import group, is_group

        chosen = body if body is not None else self.body
        tasks = self.tasks
        header = tasks.clone() if is_group(tasks) else group(tasks, app=self.app)
        values = header.apply(args, kwargs).get(propagate=propagate)
        return chosen.apply((values,))


def chord_size(sig: object) -> int:
    """How many parts ``sig`` reports to the chord it is in (Celery's ``_descend``).

    Each task counts one; a group, the sum of its members; a chain, its last step that counts;
    a chord, its body (the header reports to the inner chord, the body to this one).
    """
    from taskq.canvas.chain import is_chain
    from taskq.canvas.group import is_group

    if is_group(sig):
        return sum(chord_size(task) for task in sig.tasks)
    if is_chain(sig):
        for step in reversed(sig.tasks):
            size = chord_size(step)
            if size > 0:
                return size
        return 0
    if is_chord(sig):
        return chord_size(sig.body)
    if isinstance(sig, Signature):
        return 1
    if isinstance(sig, Mapping):
        return chord_size(required(sig))
    return sum(chord_size(task) for task in cast("Iterable[Any]", sig))


def _header_tasks(header: object, app: TaskQ | None) -> list[Signature[Any, Any]] | group[Any, Any]:
    """A header as Celery keeps it: a group's or chain's tasks, or one task, as a list."""
    from taskq.canvas.chain import is_chain
    from taskq.canvas.group import is_group

    if is_group(header) or is_chain(header):
        return list(header.tasks)
    if isinstance(header, Signature):
        return [cast("Signature[Any, Any]", header)]
    if isinstance(header, Mapping):
        return _header_tasks(required(header, app), app)
    return [required(task, app) for task in cast("Iterable[Any]", header)]


def _body_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options the body takes from the chord's: all but ``parent_id`` (its parent is the
    header task that completes the chord)."""
    return {k: v for k, v in options.items() if k != "parent_id"}


def _add_body_callbacks(body: Signature[Any, Any], options: dict[str, Any]) -> Signature[Any, Any]:
    """Move ``link``/``link_error`` from the chord's options to (a copy of) its body."""
    from taskq.canvas.group import is_group

    callbacks = as_signature_list(options.pop("link", None), body._app) or []  # pyright: ignore[reportPrivateUsage]
    errbacks = as_signature_list(options.pop("link_error", None), body._app) or []  # pyright: ignore[reportPrivateUsage]
    if not callbacks and not errbacks:
        return body
    body = body.clone()
    for callback in callbacks:
        if is_group(body) and not body.tasks:
            body.append_to_list_option("link", callback)
        else:
            body.link(callback.clone())
    for errback in errbacks:
        if is_group(body):
            body.link_error(errback)
        else:
            body.append_to_list_option("link_error", errback)
    return body


def _attach_to(
    result: AsyncResult[Any] | GroupResult, parent: AsyncResult[Any] | GroupResult
) -> None:
    """Make ``parent`` the parent of the first result in ``result``'s chain of parents that
    has none (the body may be a chain)."""
    node: AsyncResult[Any] | GroupResult = result
    seen: set[str] = set()
    while True:
        if node.id in seen:
            raise RuntimeError("recursive result parents")
        seen.add(node.id)
        above = node.parent
        if above is None:
            node.parent = parent
            return
        node = above


def is_chord(value: object) -> TypeGuard[chord[Any, Any]]:
    """Whether ``value`` is a chord (a type guard: ``isinstance`` cannot fill in the type
    parameters of a chord from a plain signature's)."""
    return isinstance(value, chord)


Signature.TYPES["chord"] = chord
