"""Signatures as they travel inside a message: callbacks, errbacks, chain steps, chord bodies.

A signature is a task call frozen into data: ``{"task", "args", "kwargs", "options",
"subtask_type", "immutable"}``. Composite signatures (chain, group, chord) hold their children in
``kwargs``: ``tasks`` for a chain or group, ``header`` and ``body`` for a chord. Those children
are read as signatures too, so a malformed child is reported where it is, not when a worker
later tries to run it. ``options.link`` and ``options.link_error`` (one signature or a list) are
checked the same way. Keys this model does not know are kept, so a message written by a newer
Celery survives a round trip through taskq unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskq_protocol.errors import MalformedMessage
from taskq_protocol.fields import (
    as_bool,
    as_list,
    as_mapping,
    describe,
    is_list,
    is_mapping,
    opt_str,
    or_empty,
    req_str,
)

__all__ = ["Signature", "SUBTASK_TYPES", "read_signature_list"]

#: ``subtask_type`` values Celery writes; ``None`` is a plain task.
SUBTASK_TYPES = frozenset({"chain", "group", "chord", "chunks", "xmap", "xstarmap"})

_KNOWN_KEYS = frozenset({"task", "args", "kwargs", "options", "subtask_type", "immutable"})
_LINK_OPTIONS = ("link", "link_error")
# Deep nesting is legal but a document nested thousands deep is an attack, not a workflow.
_MAX_DEPTH = 64


@dataclass(slots=True)
class Signature:
    """One task call, frozen. ``args`` are prepended to by a parent's result unless immutable."""

    task: str
    args: list[Any] = field(default_factory=list[Any])
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    options: dict[str, Any] = field(default_factory=dict[str, Any])
    subtask_type: str | None = None
    immutable: bool = False
    #: Keys of the wire dict this model does not know, kept verbatim.
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @classmethod
    def from_dict(cls, data: object, field_name: str = "signature") -> Signature:
        """Read a signature dict, checking every field (and nested signatures)."""
        return _read(data, field_name, 0)

    def to_dict(self) -> dict[str, Any]:
        """The wire form, as Celery writes it."""
        out: dict[str, Any] = {
            "task": self.task,
            "args": list(self.args),
            "kwargs": _write_kwargs(self),
            "options": _write_options(self.options),
            "subtask_type": self.subtask_type,
            "immutable": self.immutable,
        }
        out.update(self.extra)
        return out

    @property
    def task_id(self) -> str | None:
        """The id this signature was frozen with, if any (``options.task_id``)."""
        value = self.options.get("task_id")
        return value if isinstance(value, str) else None

    def children(self) -> list[Signature]:
        """The signatures a composite holds: chain/group members, then a chord's header and body."""
        found: list[Signature] = []
        for key in ("tasks", "header"):
            value = self.kwargs.get(key)
            if isinstance(value, Signature):
                found.append(value)
            elif isinstance(value, list):
                found.extend(v for v in value if isinstance(v, Signature))  # pyright: ignore[reportUnknownVariableType]
        body = self.kwargs.get("body")
        if isinstance(body, Signature):
            found.append(body)
        return found


def read_signature_list(value: object, field_name: str) -> list[Signature] | None:
    """Read ``null``, one signature, or a list of signatures (``embed.callbacks`` and friends)."""
    if value is None:
        return None
    return _read_many(value, field_name, 0)


def _read_many(value: object, field_name: str, depth: int) -> list[Signature]:
    if is_mapping(value):
        return [_read(value, field_name, depth)]
    items = as_list(value, field_name)
    return [_read(item, f"{field_name}[{i}]", depth) for i, item in enumerate(items)]


def _read(data: object, where: str, depth: int) -> Signature:
    if depth > _MAX_DEPTH:
        raise MalformedMessage(where, f"signatures nested deeper than {_MAX_DEPTH} levels")
    raw = as_mapping(data, where)
    if "task" not in raw:
        raise MalformedMessage(f"{where}.task", "missing: a signature needs a task name")
    subtask_type = opt_str(raw.get("subtask_type"), where, "subtask_type")
    kwargs = as_mapping(or_empty(raw.get("kwargs"), {}), where, "kwargs")
    if subtask_type in ("chain", "group", "chord"):
        kwargs = dict(kwargs)  # children are replaced by Signatures; the input stays untouched
    if subtask_type in ("chain", "group") and "tasks" in kwargs:
        kwargs["tasks"] = _read_many(kwargs["tasks"], f"{where}.kwargs.tasks", depth + 1)
    elif subtask_type == "chord":
        if "header" in kwargs:
            kwargs["header"] = _read_composite(kwargs["header"], f"{where}.kwargs.header", depth)
        if kwargs.get("body") is not None:
            kwargs["body"] = _read(kwargs["body"], f"{where}.kwargs.body", depth + 1)
    return Signature(
        task=req_str(raw["task"], where, "task"),
        args=as_list(or_empty(raw.get("args"), []), where, "args"),
        kwargs=kwargs,
        options=_read_options(or_empty(raw.get("options"), {}), where, depth),
        subtask_type=subtask_type,
        immutable=as_bool(raw.get("immutable", False), where, "immutable"),
        extra={}
        if raw.keys() <= _KNOWN_KEYS
        else {k: v for k, v in raw.items() if k not in _KNOWN_KEYS},
    )


def _read_composite(value: object, where: str, depth: int) -> Signature | list[Signature]:
    """A chord header: a list of signatures, or one (group) signature."""
    if is_mapping(value):
        return _read(value, where, depth + 1)
    if is_list(value):
        return _read_many(value, where, depth + 1)
    raise MalformedMessage(where, f"expected a signature or a list of them, got {describe(value)}")


def _read_options(value: object, where: str, depth: int) -> dict[str, Any]:
    options = as_mapping(value, where, "options")
    if "link" in options or "link_error" in options:
        options = dict(options)  # links are replaced by Signatures; the input stays untouched
    for key in _LINK_OPTIONS:
        link = options.get(key)
        if link is None:
            continue
        if is_mapping(link):
            options[key] = _read(link, f"{where}.options.{key}", depth + 1)
        else:
            options[key] = _read_many(link, f"{where}.options.{key}", depth + 1)
    return options


def _to_wire(value: object) -> object:
    if isinstance(value, Signature):
        return value.to_dict()
    if is_list(value):
        return [_to_wire(v) for v in value]
    return value


def _write_kwargs(sig: Signature) -> dict[str, Any]:
    if sig.subtask_type not in ("chain", "group", "chord"):
        return dict(sig.kwargs)
    return {k: _to_wire(v) for k, v in sig.kwargs.items()}


def _write_options(options: dict[str, Any]) -> dict[str, Any]:
    if not any(key in options for key in _LINK_OPTIONS):
        return dict(options)
    return {k: (_to_wire(v) if k in _LINK_OPTIONS else v) for k, v in options.items()}
