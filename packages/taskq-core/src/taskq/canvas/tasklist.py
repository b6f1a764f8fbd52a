"""What a chain and a group share: a signature whose ``kwargs["tasks"]`` is a list of signatures.

Both keep their steps or members in ``kwargs["tasks"]`` (that is where Celery puts them on the
wire), take their app from the first task when none was given, and clone every task when they
are cloned. A chord keeps a header and a body instead, so it is not one of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from taskq.canvas.signature import Signature, required
from taskq.canvas.typevars import Arg_contra, R_co

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["TaskList"]


class TaskList(Signature[R_co, Arg_contra]):
    """A signature holding a list of signatures in ``kwargs["tasks"]`` (chain and group)."""

    @property
    def tasks(self) -> list[Signature[Any, Any]]:
        return cast("list[Signature[Any, Any]]", self.kwargs["tasks"])

    @tasks.setter
    def tasks(self, value: Iterable[Signature[Any, Any]]) -> None:
        self.kwargs["tasks"] = list(value)

    @property
    def app(self) -> TaskQ:
        if self._app is None and self.tasks:
            return self.tasks[0].app
        return super().app

    def _clone_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "tasks": [required(t, self._app).clone() for t in kwargs["tasks"]]}

    def _restore_fields(self, d: Mapping[str, Any]) -> None:
        """Take ``args`` and ``immutable`` from a signature as it arrived in a message."""
        self.args = d.get("args") or ()
        self.immutable = bool(d.get("immutable", False))
