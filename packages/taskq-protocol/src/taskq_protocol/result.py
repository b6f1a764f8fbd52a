"""Result meta, the record a result store keeps per task, and result references.

The meta is ``{"status", "result", "traceback", "children", "date_done", "task_id"}``, plus
``group_id``/``parent_id`` when the task has them and, with ``result_extended``, ``name``,
``args``, ``kwargs``, ``worker``, ``retries`` and ``queue`` (reference §1.10). For a failure,
``result`` holds the exception in the form of :mod:`taskq_protocol.exceptions`.

``children`` and group records hold *result references*, Celery's result tuples:
``[[id, parent], null]`` for one task and ``[[group_id, parent], [child, ...]]`` for a group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskq_protocol import states
from taskq_protocol.errors import MalformedMessage
from taskq_protocol.exceptions import exception_from_dict, exception_to_dict
from taskq_protocol.fields import (
    as_list,
    as_mapping,
    describe,
    format_datetime,
    is_list,
    opt_datetime,
    opt_int,
    opt_str,
    or_empty,
    req_str,
    unknown_keys,
)

__all__ = ["ResultMeta", "ResultRef"]

_BASE_KEYS = ("status", "result", "traceback", "children", "date_done", "task_id")
_OPTIONAL_KEYS = ("group_id", "parent_id")
_EXTENDED_KEYS = ("name", "args", "kwargs", "worker", "retries", "queue")
_KNOWN_KEYS = frozenset(_BASE_KEYS + _OPTIONAL_KEYS + _EXTENDED_KEYS)
_MAX_DEPTH = 256


@dataclass(frozen=True, slots=True)
class ResultRef:
    """A pointer to a task's result (``children`` is ``None``) or a group's (a tuple)."""

    id: str
    parent: ResultRef | None = None
    children: tuple[ResultRef, ...] | None = None

    @property
    def is_group(self) -> bool:
        return self.children is not None

    def as_tuple(self) -> list[Any]:
        """Celery's wire form (JSON has no tuples, so lists)."""
        parent = None if self.parent is None else self.parent.as_tuple()
        nodes = None if self.children is None else [c.as_tuple() for c in self.children]
        return [[self.id, parent], nodes]

    @classmethod
    def from_tuple(cls, value: object, where: str = "result_ref") -> ResultRef:
        return _ref_from(value, where, 0)


def _ref_from(value: object, where: str, depth: int) -> ResultRef:
    if depth > _MAX_DEPTH:
        raise MalformedMessage(where, f"result references nested deeper than {_MAX_DEPTH}")
    pair = as_list(value, where)
    if len(pair) != 2:
        raise MalformedMessage(where, f"expected [[id, parent], children], got {describe(value)}")
    head, nodes = pair
    if is_list(head):
        if len(head) != 2:
            raise MalformedMessage(f"{where}[0]", f"expected [id, parent], got {describe(head)}")
        ref_id, parent = head
    else:  # very old stores wrote a bare id
        ref_id, parent = head, None
    return ResultRef(
        id=req_str(ref_id, f"{where}[0][0]"),
        parent=None if not parent else _ref_from(parent, f"{where}[0][1]", depth + 1),
        children=None
        if nodes is None
        else tuple(
            _ref_from(node, f"{where}[1][{i}]", depth + 1)
            for i, node in enumerate(as_list(nodes, f"{where}[1]"))
        ),
    )


@dataclass(slots=True)
class ResultMeta:
    """What a result store holds for one task."""

    task_id: str
    status: str = states.PENDING
    result: Any = None
    traceback: str | None = None
    children: list[Any] = field(default_factory=list[Any])
    date_done: datetime | None = None
    group_id: str | None = None
    parent_id: str | None = None
    #: ``result_extended`` fields; ``None`` when the store did not write them.
    name: str | None = None
    #: As the store wrote them: lists/dicts, or encoded text in SQL stores.
    args: Any = None
    kwargs: Any = None
    worker: str | None = None
    retries: int | None = None
    queue: str | None = None
    #: Stamps and anything else a sender added, kept verbatim.
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def ready(self) -> bool:
        return self.status in states.READY_STATES

    @classmethod
    def failure(
        cls, task_id: str, exc: BaseException, traceback: str | None = None, **fields: Any
    ) -> ResultMeta:
        """A FAILURE record holding ``exc`` in the stored exception form."""
        return cls(
            task_id=task_id,
            status=states.FAILURE,
            result=exception_to_dict(exc),
            traceback=traceback,
            **fields,
        )

    def exception(self) -> BaseException | None:
        """The stored exception rebuilt (safely), for FAILURE, RETRY and REVOKED records."""
        if self.status not in states.EXCEPTION_STATES or self.result is None:
            return None
        return exception_from_dict(self.result)

    def child_refs(self) -> list[ResultRef]:
        return [
            ResultRef.from_tuple(child, f"meta.children[{i}]")
            for i, child in enumerate(self.children)
        ]

    def to_dict(self, *, extended: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "result": self.result,
            "traceback": self.traceback,
            "children": list(self.children),
            "date_done": format_datetime(self.date_done),
        }
        if self.group_id:
            out["group_id"] = self.group_id
        if self.parent_id:
            out["parent_id"] = self.parent_id
        if extended:
            out.update(
                name=self.name,
                args=self.args,
                kwargs=self.kwargs,
                worker=self.worker,
                retries=self.retries,
                queue=self.queue,
            )
        out.update(self.extra)
        out["task_id"] = self.task_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | object, task_id: str | None = None) -> ResultMeta:
        """Read a stored meta. ``task_id`` fills in records written without one."""
        raw = as_mapping(data, "meta")
        status = req_str(raw.get("status"), "meta", "status")
        stored_id = opt_str(raw.get("task_id"), "meta", "task_id")
        resolved_id = stored_id or task_id
        if not resolved_id:
            raise MalformedMessage("meta.task_id", "missing, and no task id was given")
        return cls(
            task_id=resolved_id,
            status=status,
            result=raw.get("result"),
            traceback=opt_str(raw.get("traceback"), "meta", "traceback"),
            children=as_list(or_empty(raw.get("children"), []), "meta", "children"),
            date_done=opt_datetime(raw.get("date_done"), "meta", "date_done"),
            group_id=opt_str(raw.get("group_id"), "meta", "group_id"),
            parent_id=opt_str(raw.get("parent_id"), "meta", "parent_id"),
            name=opt_str(raw.get("name"), "meta", "name"),
            args=raw.get("args"),
            kwargs=raw.get("kwargs"),
            worker=opt_str(raw.get("worker"), "meta", "worker"),
            retries=opt_int(raw.get("retries"), "meta", "retries"),
            queue=opt_str(raw.get("queue"), "meta", "queue"),
            extra=unknown_keys(raw, _KNOWN_KEYS),
        )
