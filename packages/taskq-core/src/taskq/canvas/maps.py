"""``xmap``, ``xstarmap`` and ``chunks``: many calls of one task in few messages.

``add.map([1, 2])`` and ``add.starmap([(1, 2), (3, 4)])`` are one message each, for Celery's
built-in ``celery.map``/``celery.starmap`` tasks, which call the task's function for every item
in turn in one worker (not in parallel) and return the list of results. ``add.chunks(items,
10)`` is a group of ``celery.starmap`` messages of ten items each. The wire form is Celery's
(``kwargs: {"task": <signature>, "it": [...]}``, ``n`` for chunks), so a Celery client's map
runs on a taskq worker and the other way round. The built-in tasks are registered with every
app (:mod:`taskq.canvas.builtins`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, cast

from taskq.canvas.signature import Signature, required
from taskq.canvas.typevars import T
from taskq_protocol.ids import uuid4_text

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.group import group
    from taskq.canvas.sending import Plan
    from taskq.result import AsyncResult, EagerResult, GroupResult

__all__ = ["xmap", "xstarmap", "chunks"]


class _basemap(Signature[list[T], object]):
    """A map over ``it``: one message for the built-in task named ``builtin``."""

    builtin: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def __init__(
        self,
        task: Signature[Any, Any] | Mapping[str, Any],
        it: Iterable[Any],
        app: TaskQ | None = None,
        **options: Any,
    ) -> None:
        sig = required(task, app)
        super().__init__(
            self.builtin,
            (),
            {"task": sig, "it": list(it)},
            options,
            subtask_type=self.kind,
            immutable=True,
            app=app or sig._app,  # pyright: ignore[reportPrivateUsage]
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> _basemap[Any]:
        kwargs: Mapping[str, Any] = d.get("kwargs") or {}
        items: Iterable[Any] = kwargs.get("it") or ()
        return cls(kwargs["task"], items, app=app, **(d.get("options") or {}))

    @property
    def mapped(self) -> Signature[Any, Any]:
        """The signature of the task called for every item."""
        return required(self.kwargs["task"], self._app)

    @property
    def it(self) -> list[Any]:
        """The items the task is called with."""
        return cast("list[Any]", self.kwargs["it"])

    def _clone_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            **kwargs,
            "task": required(kwargs["task"], self._app).clone(),
            "it": list(kwargs["it"]),
        }

    def _call(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The built-in task's kwargs and the options it is sent with (routed as the mapped
        task, as Celery routes it)."""
        _, _, merged = self._merge(options={k: v for k, v in options.items() if v is not None})
        merged["route_name"] = merged.get("route_name") or self.mapped.task
        return {"task": self.mapped, "it": list(self.it)}, merged

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> AsyncResult[list[T]]:
        if route_name:
            options["route_name"] = route_name
        call_kwargs, call_options = self._call(options)
        return self.type.apply_async((), call_kwargs, **call_options)

    def plan(
        self,
        into: Plan,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[list[T]] | GroupResult:
        call_kwargs, call_options = self._call(options)
        task_id = call_options.setdefault("task_id", uuid4_text())
        into.call(self.builtin, (), call_kwargs, call_options)
        result = self.AsyncResult(task_id)
        if into.trail is None:
            into.trail = result
        return result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[list[T]]:
        call_kwargs, call_options = self._call(options)
        call_options.pop("route_name", None)
        return self.type.apply((), call_kwargs, **call_options)

    def __repr__(self) -> str:
        star = "*" if self.kind == "xstarmap" else ""
        return f"[{self.mapped.task}({star}x) for x in {self.it!r:.100}]"


class xmap(_basemap[T]):
    """``task.map(it)``: ``[task(x) for x in it]`` in one worker, one message."""

    builtin = "celery.map"
    kind = "xmap"


class xstarmap(_basemap[T]):
    """``task.starmap(it)``: ``[task(*x) for x in it]`` in one worker, one message."""

    builtin = "celery.starmap"
    kind = "xstarmap"


class chunks(Signature[list[list[T]], object]):
    """``task.chunks(it, n)``: ``it`` cut into parts of ``n`` items, each part one
    ``xstarmap`` message, all of them one group."""

    def __init__(
        self,
        task: Signature[Any, Any] | Mapping[str, Any],
        it: Iterable[Any],
        n: int,
        app: TaskQ | None = None,
        **options: Any,
    ) -> None:
        sig = required(task, app)
        super().__init__(
            "celery.chunks",
            (),
            {"task": sig, "it": list(it), "n": int(n)},
            options,
            subtask_type="chunks",
            immutable=True,
            app=app or sig._app,  # pyright: ignore[reportPrivateUsage]
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: TaskQ | None = None) -> chunks[Any]:
        kwargs: Mapping[str, Any] = d.get("kwargs") or {}
        items: Iterable[Any] = kwargs.get("it") or ()
        return cls(kwargs["task"], items, int(kwargs["n"]), app=app, **(d.get("options") or {}))

    def _clone_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            **kwargs,
            "task": required(kwargs["task"], self._app).clone(),
            "it": list(kwargs["it"]),
        }

    def group(self) -> group[list[T], object]:
        """The group of ``xstarmap`` parts this sends."""
        from taskq.canvas.group import group

        task = required(self.kwargs["task"], self._app)
        parts = _chunked(self.kwargs["it"], int(self.kwargs["n"]))
        return group([xstarmap[T](task, part, app=self._app) for part in parts], app=self._app)

    def apply_async(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> GroupResult:
        task = required(self.kwargs["task"], self._app)
        merged = {**self.options, **options}
        return self.group().apply_async(args, kwargs, route_name=route_name or task.task, **merged)

    def plan(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        into: Plan,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        task = required(self.kwargs["task"], self._app)
        options.setdefault("route_name", task.task)
        return self.group().plan(into, args, kwargs, **{**self.options, **options})

    def __call__(self, **options: Any) -> GroupResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self.apply_async(**options)

    def apply(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Run every part here (the eager form of the group)."""
        return self.group().apply(args, kwargs, **{**self.options, **options})

    @classmethod
    def apply_chunks(
        cls,
        task: Signature[Any, Any] | Mapping[str, Any],
        it: Iterable[Any],
        n: int,
        app: TaskQ | None = None,
    ) -> GroupResult:
        """Send ``task`` over ``it`` in parts of ``n`` (what the ``celery.chunks`` task does)."""
        return cls(task, it, n, app=app)()


def _chunked(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    if n < 1:
        raise ValueError(f"chunks need n >= 1, got {n}")
    iterator = iter(items)
    while part := list(islice(iterator, n)):
        yield part


Signature.TYPES["xmap"] = xmap
Signature.TYPES["xstarmap"] = xstarmap
Signature.TYPES["chunks"] = chunks
