"""``Signature``: one task call as data, sent later, linked to others, or nested in workflows.

A signature is a dict, as in Celery, so it travels in messages as it is (``task``, ``args``,
``kwargs``, ``options``, ``subtask_type``, ``immutable``) and a signature dict written by a
Celery client works here. :meth:`Signature.from_dict` turns a dict back into the right class by
its ``subtask_type`` (``chain``, ``group``, ``chord``, ``xmap``, ``xstarmap``, ``chunks``).

Partial application works as in Celery: arguments given when the signature is applied are
*prepended* to its own (so a parent's result becomes the first argument), keyword arguments are
merged over its own, and options are merged over its options, except ``group_id`` once set (a
group member that changed group would no longer be counted by its chord). An ``immutable``
signature takes no arguments from outside, only options.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar, cast

from taskq import result as results
from taskq.canvas.typevars import A1, R1, R2, Arg_contra, R_co
from taskq_protocol.ids import uuid4_text

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.chain import chain
    from taskq.canvas.sending import Plan
    from taskq.result import AsyncResult, EagerResult, GroupResult
    from taskq.task import Task

__all__ = ["Signature", "signature", "maybe_signature", "as_signature_list"]

S = TypeVar("S", bound="Signature[Any, Any]")


class Signature(dict[str, Any], Generic[R_co, Arg_contra]):
    """One task call: name, arguments and ``apply_async`` options.

    ``add.s(2)`` is a ``Signature[int, int]`` (``add`` returns an int and takes one more int
    from a parent); see :mod:`taskq.canvas.typevars` for what the two parameters mean.
    """

    #: Classes by ``subtask_type``, for :meth:`from_dict` (filled as the modules load).
    TYPES: ClassVar[dict[str, type[Signature[Any, Any]]]] = {}
    #: Options a merge never changes once they are set (Celery's ``_IMMUTABLE_OPTIONS``).
    IMMUTABLE_OPTIONS: ClassVar[frozenset[str]] = frozenset({"group_id", "stamped_headers"})

    _app: TaskQ | None

    def __init__(
        self,
        task: str | Task[Any, Any] | Mapping[str, Any],
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: TaskQ | None = None,
        **extra_options: Any,
    ) -> None:
        if isinstance(task, Mapping):
            raw: Mapping[str, Any] = task
            super().__init__(raw)  # keys a newer Celery writes are kept
            self["task"] = str(raw["task"])
            self["args"] = list(raw.get("args") or ())
            self["kwargs"] = dict(raw.get("kwargs") or {})
            self["options"] = {**(raw.get("options") or {}), **extra_options}
            self["subtask_type"] = raw.get("subtask_type")
            self["immutable"] = bool(raw.get("immutable", False))
            if app is None and isinstance(task, Signature):
                app = cast("Signature[Any, Any]", task)._app
        else:
            super().__init__(
                task=task if isinstance(task, str) else task.name,
                args=list(args or ()),
                kwargs=dict(kwargs or {}),
                options={**(options or {}), **extra_options},
                subtask_type=subtask_type,
                immutable=immutable,
            )
            if app is None and not isinstance(task, str):
                app = task.app
        self._app = app

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> Signature[Any, Any]:
        """The signature a dict describes, as the class its ``subtask_type`` names."""
        kind = d.get("subtask_type")
        target = cls.TYPES.get(kind) if kind else None
        if target is not None and target is not cls:
            return target.from_dict(d, app=app)
        return Signature(d, app=app)

    # -- fields ------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def name(self) -> str:
        """The task name (duck-typing ``Task.name``, as Celery's signatures do)."""
        return self.task

    @property
    def args(self) -> list[Any]:
        return cast("list[Any]", self["args"])

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self["args"] = list(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self["kwargs"])

    @kwargs.setter
    def kwargs(self, value: Mapping[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self["options"])

    @options.setter
    def options(self, value: Mapping[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def subtask_type(self) -> str | None:
        value = self.get("subtask_type")
        return value if isinstance(value, str) else None

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @immutable.setter
    def immutable(self, value: bool) -> None:
        self["immutable"] = bool(value)

    @property
    def id(self) -> str | None:
        """The task id this call was frozen with (``options.task_id``), if any."""
        value = self.options.get("task_id")
        return value if isinstance(value, str) else None

    @id.setter
    def id(self, value: str | None) -> None:
        self.options["task_id"] = value

    @property
    def parent_id(self) -> str | None:
        return self.options.get("parent_id")

    @property
    def root_id(self) -> str | None:
        return self.options.get("root_id")

    @property
    def app(self) -> TaskQ:
        if self._app is None:
            from taskq.context import current_app

            return current_app()
        return self._app

    @property
    def type(self) -> Task[Any, Any]:
        """The registered task this signature calls (NotRegistered when there is none)."""
        return self.app.tasks[self.task]

    def AsyncResult(self, task_id: str) -> AsyncResult[R_co]:
        return results.AsyncResult(task_id, app=self.app, task_name=self.task)

    # -- building ----------------------------------------------------------------------------

    def _merge(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """``(args, kwargs, options)`` with the partial ones merged in, as Celery's ``_merge``:
        args prepended, kwargs and options merged over (options but the immutable ones)."""
        new_options = dict(self.options)
        if options:
            self._merge_options(new_options, options)
        return (*self._call_arguments(args, kwargs, force), new_options)

    def _merge_options(self, into: dict[str, Any], options: Mapping[str, Any]) -> None:
        """``options`` over ``into``, in place, except the :attr:`IMMUTABLE_OPTIONS` it has."""
        keep = self.IMMUTABLE_OPTIONS
        into.update((k, v) for k, v in options.items() if k not in keep or k not in into)

    def _call_arguments(
        self,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        force: bool = False,
    ) -> tuple[list[Any], dict[str, Any]]:
        """:meth:`_merge`'s args and kwargs: the partial ones prepended and merged over,
        unless this signature is immutable (and not ``force``)."""
        if self.immutable and not force:
            return list(self.args), dict(self.kwargs)
        return [*(args or ()), *self.args], {**self.kwargs, **(kwargs or {})}

    def clone(
        self: S,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> S:
        """A copy (options deep-copied, so links are not shared) with partial args merged."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        data = {
            **self,
            "args": new_args,
            "kwargs": self._clone_kwargs(new_kwargs),
            "options": _copy_options(new_options),
        }
        if type(self) is Signature and not self.get("subtask_type"):
            # Its fields are in shape and new: skip the copies __init__ makes of a mapping's
            # (a group clones every member it sends). A subtask_type goes through from_dict,
            # which gives the clone the class it names.
            twin: Signature[Any, Any] = Signature.__new__(Signature)
            twin.update(data)
            twin._app = self._app
            return cast(S, twin)
        return cast(S, type(self).from_dict(data, app=self._app))

    partial = clone

    def _clone_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Composite signatures copy their members here, so a clone never shares them."""
        return kwargs

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature[Any, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> AsyncResult[R_co]:
        """Fix this call's task id now (and its place in a group or chord), so its result can
        be referred to before it is sent. Returns that result."""
        opts, app = self.options, self.app
        task_id = _freeze(opts, app, _id, group_id, chord, root_id, parent_id, group_index)
        return self.AsyncResult(task_id)

    def _plan_member(
        self,
        into: Plan,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
        group_id: str,
        root_id: str | None,
        index: int,
    ) -> AsyncResult[R_co]:
        """For a plain signature (no ``subtask_type``): what ``clone()``, ``freeze()`` as
        member ``index`` of group ``group_id``, then ``plan(into, args, kwargs, **options)``
        of the copy do, without making the copy (``options`` hold no None, which ``plan()``
        would drop). A group plans each of its members so, and the copies cost as much as
        the rest of planning them."""
        opts = _copy_options(self.options)
        task_id = _freeze(opts, self.app, None, group_id, None, root_id, None, index)
        self._merge_options(opts, options)
        call_args, call_kwargs = self._call_arguments(args, kwargs)
        into.call(self.task, call_args, call_kwargs, opts)
        return self.AsyncResult(task_id)

    def replace(
        self: S,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> S:
        """A copy with args, kwargs or options replaced (each when given)."""
        sig = self.clone()
        if args is not None:
            sig.args = args
        if kwargs is not None:
            sig.kwargs = kwargs
        if options is not None:
            sig.options = options
        return sig

    def set(self: S, immutable: bool | None = None, **options: Any) -> S:
        """Set ``apply_async`` options in place; returns the signature (Celery's ``set``)."""
        if immutable is not None:
            self.set_immutable(immutable)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def _list_option(self, key: str) -> list[Any]:
        """``options[key]`` as a list, stored back as one (``link`` may hold one signature)."""
        items = self.options.get(key)
        if items is None:
            items = self.options[key] = []
        elif not isinstance(items, list):
            items = self.options[key] = [items]
        return cast("list[Any]", items)

    def append_to_list_option(self, key: str, value: Any) -> Any:
        items = self._list_option(key)
        if value not in items:
            items.append(value)
        return value

    def extend_list_option(self, key: str, value: Any) -> None:
        self._list_option(key).extend(as_signature_list(value, self._app) or [])

    def link(self, callback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Run ``callback`` with this task's result when it succeeds; returns ``callback``."""
        return cast("Signature[Any, Any]", self.append_to_list_option("link", callback))

    def link_error(self, errback: Signature[Any, Any]) -> Signature[Any, Any]:
        """Run ``errback`` when this task fails; returns ``errback``.

        An errback whose task takes more than one argument is called in the worker as
        ``errback(request, exc, traceback)``; one that takes a single argument is sent as a
        task with the failed task's id (Celery's old style).
        """
        return cast("Signature[Any, Any]", self.append_to_list_option("link_error", errback))

    def on_error(self: S, errback: Signature[Any, Any]) -> S:
        """:meth:`link_error` that returns this signature, for chaining calls."""
        self.link_error(errback)
        return self

    def flatten_links(self) -> list[Signature[Any, Any]]:
        """This signature and every callback below it, depth first."""
        found: list[Signature[Any, Any]] = [self]
        for link in as_signature_list(self.options.get("link"), self._app) or []:
            found.extend(link.flatten_links())
        return found

    # dict's | merges mappings; a signature's | chains tasks, as in Celery. A type checker
    # sees the chain rule: the right side must accept what the left side returns.
    def __or__(  # pyright: ignore[reportIncompatibleMethodOverride]
        self: Signature[R1, A1], other: Signature[R2, R1]
    ) -> chain[R2, A1]:
        from taskq.canvas.chain import chain

        if not isinstance(other, Signature):  # pyright: ignore[reportUnnecessaryIsInstance]
            return NotImplemented
        return chain(self, other, app=self._app)  # pyright: ignore[reportUnknownVariableType]

    def __ror__(self, other: NoReturn) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        # dict's reflected merge would make ``a | b`` with an unfitting ``b`` type-check as a
        # dict; refusing every left operand leaves the chain rule as the only reading.
        return NotImplemented

    def __ior__(self, other: Signature[Any, Any]) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self.__or__(other)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature[Any, Any]:
        data = {key: copy.deepcopy(value, memo) for key, value in self.items()}
        return type(self).from_dict(data, app=self._app)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        # Pickled as its dict (the app is found again where it is loaded), as Celery does.
        return (signature, (dict(self),))

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """``name(arg, ..., key=value)`` with the given partial arguments merged in."""
        call_args, call_kwargs, _ = self._merge(args, kwargs, None, force=True)
        shown = [*map(repr, call_args), *(f"{k}={v!r}" for k, v in call_kwargs.items())]
        return f"{self.task}({', '.join(shown)})"

    def __repr__(self) -> str:
        return self.reprcall() + ("!" if self.immutable else "")

    # -- sending -----------------------------------------------------------------------------

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> AsyncResult[R_co]:
        """Send the call; partial args are prepended, kwargs and options merged over its own."""
        options = {k: v for k, v in options.items() if v is not None}
        call_args: list[Any]
        call_kwargs: dict[str, Any]
        call_options: dict[str, Any]
        if args or kwargs or options:
            call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        else:
            call_args, call_kwargs, call_options = self.args, self.kwargs, self.options
        if route_name:
            call_options = {**call_options, "route_name": route_name}
        app = self.app
        task = app.tasks.get(self.task)
        if task is not None:
            return task.apply_async(call_args, call_kwargs, **call_options)
        return app.send_task(self.task, call_args, call_kwargs, **call_options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R_co]:
        """``apply_async(args, kwargs)``: partial arguments by star arguments."""
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R_co]:
        """Run the call in this process (``Task.apply``) and return its EagerResult."""
        options = {k: v for k, v in options.items() if v is not None}
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        return self.type.apply(call_args, call_kwargs, **call_options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function here with the signature's arguments (no message)."""
        call_args, call_kwargs, _ = self._merge(args, kwargs, None)
        return self.type(*call_args, **call_kwargs)

    def plan(
        self,
        into: Plan,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R_co] | GroupResult:
        """Add what applying this signature publishes to ``into``, without sending it; return
        the result it will have. Composite signatures add every message they send."""
        options = {k: v for k, v in options.items() if v is not None}
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        if not call_options.get("task_id"):
            call_options["task_id"] = uuid4_text()
        result = self.AsyncResult(call_options["task_id"])
        into.call(self.task, call_args, call_kwargs, call_options)
        if into.trail is None:
            into.trail = result
        return result


def _copy_options(options: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``options`` (links, chain steps, headers are not shared), except the
    ``chord`` body: freezing a chord gives every header task the same body, and a copy of
    a header task keeps sharing it (copying it per task made a 10,000-task header slow)."""
    return {
        key: value if key == "chord" else copy.deepcopy(value) for key, value in options.items()
    }


def _freeze(
    opts: dict[str, Any],
    app: TaskQ,
    _id: str | None,
    group_id: str | None,
    chord: Signature[Any, Any] | None,
    root_id: str | None,
    parent_id: str | None,
    group_index: int | None,
) -> str:
    """Freeze a plain signature's ``opts`` in place (see :meth:`Signature.freeze`); returns
    the task id."""
    task_id = opts.get("task_id")
    if not task_id:
        task_id = opts["task_id"] = _id or uuid4_text()
    if root_id:
        opts["root_id"] = root_id
    if parent_id:
        opts["parent_id"] = parent_id
    if "reply_to" not in opts:
        opts["reply_to"] = app.thread_oid
    if group_id and "group_id" not in opts:
        opts["group_id"] = group_id
    if chord:
        opts["chord"] = chord
    if group_index is not None:
        opts["group_index"] = group_index
    return str(task_id)


def signature(
    varies: str | Task[Any, Any] | Mapping[str, Any],
    args: Iterable[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    app: TaskQ | None = None,
    **extra: Any,
) -> Signature[Any, Any]:
    """Celery's ``signature()``: a copy of a signature, the class a dict describes, or a new
    signature for a task (or task name)."""
    if isinstance(varies, Signature):
        return cast("Signature[Any, Any]", varies).clone()
    if isinstance(varies, Mapping):
        return Signature.from_dict(varies, app=app)
    return Signature(varies, args, kwargs, options, app=app, **extra)


def maybe_signature(
    value: Any, app: TaskQ | None = None, clone: bool = False
) -> Signature[Any, Any] | None:
    """A signature from a signature or a dict as it arrived in a message; None stays None.

    With ``app``, the signature is bound to it (Celery binds it the same way).
    """
    if value is None:
        return None
    if isinstance(value, Signature):
        sig = cast("Signature[Any, Any]", value)
        if clone:
            sig = sig.clone()
    else:
        sig = Signature.from_dict(cast("Mapping[str, Any]", value), app=app)
    if app is not None:
        sig._app = app  # pyright: ignore[reportPrivateUsage]
    return sig


def as_signature_list(value: Any, app: TaskQ | None = None) -> list[Signature[Any, Any]] | None:
    """``link``/``link_error`` options as signatures: one, a list, or None."""
    if value is None:
        return None
    items: list[Any] = [value] if isinstance(value, Mapping) else list(value)
    return [cast("Signature[Any, Any]", maybe_signature(item, app)) for item in items]


def required(value: Any, app: TaskQ | None = None) -> Signature[Any, Any]:
    """:func:`maybe_signature` for a value that must be there."""
    sig = maybe_signature(value, app)
    if sig is None:
        raise ValueError("expected a signature, got None")
    return sig
