"""Signatures and chains: task calls as data, sent later or linked to each other.

A :class:`Signature` is a dict, like Celery's, so it travels in messages as is (``task``,
``args``, ``kwargs``, ``options``, ``subtask_type``, ``immutable``) and a signature dict from
a Celery client works here. ``a | b`` makes a :class:`chain`: only the first task is sent, with
the rest in its ``embed.chain`` (reversed, next step last); each worker sends the next step
with the result prepended to its arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.result import AsyncResult, EagerResult

__all__ = ["Signature", "signature", "chain", "maybe_signature"]


class Signature(dict[str, Any]):
    """One task call, frozen: name, arguments and ``apply_async`` options."""

    def __init__(
        self,
        task: str | Mapping[str, Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: TaskQ | None = None,
        **extra_options: Any,
    ) -> None:
        if isinstance(task, Mapping):
            raw = dict(task)
            super().__init__(
                task=raw["task"],
                args=list(raw.get("args") or ()),
                kwargs=dict(raw.get("kwargs") or {}),
                options=dict(raw.get("options") or {}),
                subtask_type=raw.get("subtask_type"),
                immutable=bool(raw.get("immutable", False)),
            )
        else:
            super().__init__(
                task=task,
                args=list(args or ()),
                kwargs=dict(kwargs or {}),
                options={**(options or {}), **extra_options},
                subtask_type=subtask_type,
                immutable=immutable,
            )
        self._app = app

    # -- fields ----------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[Any]:
        return self["args"]  # type: ignore[no-any-return]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self["kwargs"]  # type: ignore[no-any-return]

    @property
    def options(self) -> dict[str, Any]:
        return self["options"]  # type: ignore[no-any-return]

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def id(self) -> str | None:
        value = self.options.get("task_id")
        return value if isinstance(value, str) else None

    @property
    def app(self) -> TaskQ:
        if self._app is None:
            from taskq.context import current_app

            return current_app()
        return self._app

    def __repr__(self) -> str:
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.task}({args}){'!' if self.immutable else ''}"

    # -- building ----------------------------------------------------------------------------

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy; ``args`` are prepended (unless immutable), kwargs and options merged."""
        new_args = list(self.args)
        new_kwargs = dict(self.kwargs)
        if not self.immutable:
            new_args = [*(args or ()), *new_args]
            new_kwargs.update(kwargs or {})
        return Signature(
            self.task,
            new_args,
            new_kwargs,
            {**self.options, **options},
            subtask_type=self["subtask_type"],
            immutable=self.immutable,
            app=self._app,
        )

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set ``apply_async`` options in place (Celery's ``set``); returns self."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def freeze(self, task_id: str | None = None) -> str:
        """Fix this call's task id now, so results can be referred to before it is sent."""
        current = self.id
        if current is None or task_id is not None:
            current = task_id or str(uuid.uuid4())
            self.options["task_id"] = current
        return current

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this task's result when it succeeds."""
        _append_option(self.options, "link", callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` when this task fails."""
        _append_option(self.options, "link_error", errback)
        return errback

    on_error = link_error

    # dict's | merges mappings; a signature's | chains tasks, as in Celery.
    def __or__(self, other: Signature) -> chain:  # pyright: ignore[reportIncompatibleMethodOverride]
        return chain(self, other)

    # -- sending -----------------------------------------------------------------------------

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        call = self.clone(args, kwargs)
        merged = {**call.options, **options}
        task = self.app.tasks.get(call.task)
        if task is not None:
            return task.apply_async(call.args, call.kwargs, **merged)
        return self.app.send_task(call.task, call.args, call.kwargs, **merged)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[Any]:
        call = self.clone(args, kwargs)
        return self.app.tasks[call.task].apply(
            call.args, call.kwargs, **{**call.options, **options}
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function here, with the signature's arguments (no message)."""
        call = self.clone(args, kwargs)
        return self.app.tasks[call.task](*call.args, **call.kwargs)


def _append_option(options: dict[str, Any], key: str, sig: Signature) -> None:
    current = options.get(key)
    if current is None:
        options[key] = [sig]
    elif isinstance(current, list):
        current.append(sig)  # pyright: ignore[reportUnknownMemberType]
    else:
        options[key] = [current, sig]


def signature(
    task: str | Mapping[str, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    app: TaskQ | None = None,
    **extra: Any,
) -> Signature:
    """Celery's ``signature()``: from a task name or a signature dict."""
    if isinstance(task, Signature) and args is None and kwargs is None and not options:
        return task
    return Signature(task, args, kwargs, options, app=app, **extra)


def maybe_signature(value: Any, app: TaskQ | None = None) -> Signature | None:
    """A Signature from a signature or a dict as it arrived in a message; None stays None."""
    if value is None:
        return None
    if isinstance(value, Signature):
        return value
    return Signature(value, app=app)


class chain(Signature):
    """``chain(a, b, c)`` or ``a | b | c``: each task's result is the next one's first argument."""

    def __init__(self, *tasks: Signature | Iterable[Signature], app: TaskQ | None = None) -> None:
        flat: list[Signature] = []
        for item in tasks:
            if isinstance(item, chain):
                flat.extend(item.tasks)
            elif isinstance(item, Signature):
                flat.append(item)
            else:
                flat.extend(item)
        if not flat:
            raise ValueError("chain() needs at least one task")
        super().__init__(
            "celery.chain", (), {"tasks": flat}, subtask_type="chain", app=app or flat[0]._app
        )

    @property
    def tasks(self) -> list[Signature]:
        return self.kwargs["tasks"]  # type: ignore[no-any-return]

    def __or__(self, other: Signature) -> chain:  # pyright: ignore[reportIncompatibleMethodOverride]
        return chain(*self.tasks, other, app=self._app)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send the first task, carrying the frozen rest; returns the last task's result."""
        from taskq.result import AsyncResult

        steps = [step.clone() for step in self.tasks]
        ids = [step.freeze() for step in steps]
        first, rest = steps[0], steps[1:]
        result: AsyncResult[Any] | None = None
        for step_id, step in zip(ids, steps, strict=True):
            result = AsyncResult(step_id, app=self.app, task_name=step.task, parent=result)
        if self.app.conf.task_always_eager:
            return self._apply_eagerly(steps, args, kwargs, options)
        first.apply_async(args, kwargs, chain=list(reversed(rest)) or None, **options)
        assert result is not None
        return result

    def _apply_eagerly(
        self,
        steps: list[Signature],
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> AsyncResult[Any]:
        result = steps[0].apply(args, kwargs, **options)
        for step in steps[1:]:
            result = step.apply((result.get(),)) if not step.immutable else step.apply()
        return result
