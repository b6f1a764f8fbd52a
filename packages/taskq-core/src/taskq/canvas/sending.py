"""Publishing a workflow: every message it sends gathered first, then sent in one round trip.

A group of 10,000 tasks, or a chord's header, is :class:`Plan`-ned (each member adds its
message, ids frozen, nothing sent) and then published with one ``Publisher.send_many``, so a
broker that can batch writes them together. Bookkeeping that must come before the messages
(a chord's size, a complex header's saved group) runs first, in :meth:`Plan.send`.

A task whose class overrides ``apply_async`` is sent through its own ``apply_async`` instead
of the batch, so project code that hooks it (context propagation, say) still runs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from taskq.context import current_request

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.result import AsyncResult, GroupResult
    from taskq.task import Task

__all__ = ["Plan", "record_child"]


class Plan:
    """What a workflow will publish, gathered until :meth:`send`."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app
        self._before: list[Callable[[], None]] = []
        self._direct: list[Callable[[], object]] = []
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []
        #: The result a task that sends this workflow lists among its children (Celery's
        #: trail): the first message's result, or the group's result for a group.
        self.trail: AsyncResult[Any] | GroupResult | None = None

    def __len__(self) -> int:
        return len(self._calls) + len(self._direct)

    def before_publish(self, action: Callable[[], None]) -> None:
        """Run ``action`` before any message is published (a chord's ``set_chord_size``)."""
        self._before.append(action)

    def call(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        """Add one task message, checked and named as ``Task.apply_async`` would.

        ``kwargs`` and ``options`` become the plan's (callers pass ones they made for it)."""
        call_args, call_kwargs, call_options = tuple(args), kwargs, options
        task: Task[Any, Any] | None = self.app.tasks.get(name)
        if task is not None:
            if task.typing is None or task.typing:
                task.check_arguments(call_args, call_kwargs)
            if _overrides_apply_async(task):
                call_options["add_to_parent"] = False
                self._direct.append(
                    partial(task.apply_async, call_args, call_kwargs, **call_options)
                )
                return
            if not call_options.get("shadow"):
                shadow = task.shadow_name(call_args, call_kwargs, call_options)
                if shadow:
                    call_options["shadow"] = shadow
        self._calls.append((name, call_args, call_kwargs, call_options))

    def send(self) -> None:
        """Run the bookkeeping, then publish every message (one ``send_many`` for many)."""
        for action in self._before:
            action()
        for direct in self._direct:
            direct()
        calls = self._calls
        publisher = self.app.publisher
        if len(calls) == 1:
            name, args, kwargs, options = calls[0]
            publisher.send(name, args, kwargs, options, task=self.app.tasks.get(name))
        elif calls:
            publisher.send_many(calls)


def _overrides_apply_async(task: Task[Any, Any]) -> bool:
    """Whether the task's class (or a class before ``Task`` in its MRO) defines
    ``apply_async``; asked once per class (a group asks it for every member)."""
    klass = type(task)
    found = _OVERRIDES.get(klass)
    if found is None:
        from taskq.task import Task

        mro: tuple[type, ...] = klass.__mro__
        found = _OVERRIDES[klass] = any(
            "apply_async" in vars(base) for base in mro[: mro.index(Task)]
        )
    return found


_OVERRIDES: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def record_child(app: TaskQ, result: AsyncResult[Any] | GroupResult | None) -> None:
    """List ``result`` among the children of the task running here, if one is (Celery's
    ``add_trail``): its stored meta then names what it sent."""
    if result is None:
        return
    request = current_request()
    if request is None or request.is_eager or request.id is None:
        return
    task = app.tasks.get(request.task or "")
    if task is not None and not task.trail:
        return
    request.children.append(result)
