"""Celery's protocol v2 task message: headers, properties, and the ``(args, kwargs, embed)`` body.

:meth:`TaskMessage.decode` reads the three parts of a received message (the body already
deserialized) and also accepts protocol v1 messages and the v1/v2 "hybrid" some clients send,
converting both into the same model, as a Celery worker does. :meth:`TaskMessage.encode` writes
the parts back exactly as Celery's ``as_task_v2`` lays them out; :meth:`TaskMessage.create` builds
a new message with the defaults Celery fills in.

Header facts that trip up re-implementations (reference §7): ``timelimit`` is ``[hard, soft]``;
``group_index`` is snake_case; ``eta``/``expires`` are ISO-8601 strings; ``embed.chain`` is
stored in reverse, the next task last.
"""

from __future__ import annotations

import os
import reprlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

from taskq_protocol.errors import MalformedMessage
from taskq_protocol.fields import (
    as_bool,
    as_list,
    as_mapping,
    describe,
    format_datetime,
    is_mapping,
    opt_datetime,
    opt_int,
    opt_number,
    opt_str,
    or_empty,
    req_str,
    str_keys,
    unknown_keys,
)
from taskq_protocol.ids import uuid4_text
from taskq_protocol.signature import Signature, read_signature_list

__all__ = [
    "Embed",
    "MessageProperties",
    "TaskHeaders",
    "TaskMessage",
    "default_origin",
    "safe_repr",
]

#: The length Celery caps ``argsrepr``/``kwargsrepr`` at (``Task.argsrepr_maxsize``).
REPR_MAXSIZE = 1024

_HEADER_FIELDS = frozenset((
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
    "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "replaced_task_nesting", "stamped_headers", "stamps",
))  # fmt: skip
_PROPERTY_FIELDS = frozenset(
    ("correlation_id", "reply_to", "delivery_mode", "priority", "expiration")
)


@dataclass(slots=True)
class Embed:
    """The third element of the body: what runs after this task, or when it fails."""

    callbacks: list[Signature] | None = None
    errbacks: list[Signature] | None = None
    #: The remaining chain steps, reversed: the next task to run is the *last* element.
    chain: list[Signature] | None = None
    #: The chord body, set on every task of a chord's header.
    chord: Signature | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "callbacks": _sig_list(self.callbacks),
            "errbacks": _sig_list(self.errbacks),
            "chain": _sig_list(self.chain),
            "chord": None if self.chord is None else self.chord.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object, where: str = "body[2]") -> Embed:
        raw = {} if data is None else as_mapping(data, where)
        chord = raw.get("chord")
        return cls(
            callbacks=read_signature_list(raw.get("callbacks"), f"{where}.callbacks"),
            errbacks=read_signature_list(raw.get("errbacks"), f"{where}.errbacks"),
            chain=read_signature_list(raw.get("chain"), f"{where}.chain"),
            chord=None if chord is None else Signature.from_dict(chord, f"{where}.chord"),
        )


@dataclass(slots=True)
class TaskHeaders:
    """Celery's task headers (AMQP ``application_headers``), one typed field per header."""

    task: str
    id: str
    lang: str = "py"
    shadow: str | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    group: str | None = None
    group_index: int | None = None
    retries: int = 0
    #: ``(hard, soft)`` in seconds, the order Celery's code uses (its protocol doc is wrong).
    timelimit: tuple[float | None, float | None] = (None, None)
    root_id: str | None = None
    parent_id: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    ignore_result: bool = False
    replaced_task_nesting: int = 0
    stamped_headers: list[str] | None = None
    stamps: dict[str, Any] = field(default_factory=dict[str, Any])
    #: Custom headers (``apply_async(headers=...)``), kombu's ``compression``, and anything
    #: a newer sender adds; kept verbatim.
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    def to_dict(self) -> dict[str, Any]:
        hard, soft = self.timelimit
        out: dict[str, Any] = {
            "lang": self.lang,
            "task": self.task,
            "id": self.id,
            "shadow": self.shadow,
            "eta": format_datetime(self.eta),
            "expires": format_datetime(self.expires),
            "group": self.group,
            "group_index": self.group_index,
            "retries": self.retries,
            "timelimit": [hard, soft],
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "argsrepr": self.argsrepr,
            "kwargsrepr": self.kwargsrepr,
            "origin": self.origin,
            "ignore_result": self.ignore_result,
            "replaced_task_nesting": self.replaced_task_nesting,
            "stamped_headers": None if self.stamped_headers is None else list(self.stamped_headers),
            "stamps": dict(self.stamps),
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: object, where: str = "headers") -> TaskHeaders:
        raw = as_mapping(data, where)
        if "task" not in raw:
            raise MalformedMessage(f"{where}.task", "missing: the task name is required")
        if "id" not in raw:
            raise MalformedMessage(f"{where}.id", "missing: the task id is required")
        retries = opt_int(raw.get("retries"), where, "retries") or 0
        if retries < 0:
            raise MalformedMessage(f"{where}.retries", f"must not be negative, got {retries}")
        stamped = raw.get("stamped_headers")
        stamped_headers: list[str] | None = None
        if stamped is not None:
            stamped_headers = [
                req_str(name, f"{where}.stamped_headers[{i}]")
                for i, name in enumerate(as_list(stamped, where, "stamped_headers"))
            ]
        return cls(
            task=req_str(raw["task"], where, "task"),
            id=req_str(raw["id"], where, "id"),
            lang=opt_str(raw.get("lang"), where, "lang") or "py",
            shadow=opt_str(raw.get("shadow"), where, "shadow"),
            eta=opt_datetime(raw.get("eta"), where, "eta"),
            expires=opt_datetime(raw.get("expires"), where, "expires"),
            group=opt_str(raw.get("group"), where, "group"),
            group_index=opt_int(raw.get("group_index"), where, "group_index"),
            retries=retries,
            timelimit=_read_timelimit(raw.get("timelimit"), where),
            root_id=opt_str(raw.get("root_id"), where, "root_id"),
            parent_id=opt_str(raw.get("parent_id"), where, "parent_id"),
            argsrepr=opt_str(raw.get("argsrepr"), where, "argsrepr"),
            kwargsrepr=opt_str(raw.get("kwargsrepr"), where, "kwargsrepr"),
            origin=opt_str(raw.get("origin"), where, "origin"),
            ignore_result=as_bool(raw.get("ignore_result", False), where, "ignore_result"),
            replaced_task_nesting=opt_int(
                raw.get("replaced_task_nesting"), where, "replaced_task_nesting"
            )
            or 0,
            stamped_headers=stamped_headers,
            stamps=as_mapping(or_empty(raw.get("stamps"), {}), where, "stamps"),
            extra=unknown_keys(raw, _HEADER_FIELDS),
        )


@dataclass(slots=True)
class MessageProperties:
    """The AMQP basic properties Celery sets on a task message.

    ``content_type``/``content_encoding`` are not here: they describe the serialized body and
    travel with it (see :mod:`taskq_protocol.envelope`). Transport bookkeeping such as kombu's
    ``delivery_info`` and ``delivery_tag`` lives in the envelope too.
    """

    correlation_id: str | None = None
    reply_to: str | None = None
    delivery_mode: int | None = 2
    #: 0-9; which end is highest depends on the broker (Redis: 0, RabbitMQ: 9).
    priority: int | None = None
    #: Milliseconds as a decimal string, derived from ``expires`` (AMQP per-message TTL).
    expiration: str | None = None
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "correlation_id": self.correlation_id,
            "reply_to": self.reply_to,
            "delivery_mode": self.delivery_mode,
        }
        if self.priority is not None:
            out["priority"] = self.priority
        if self.expiration is not None:
            out["expiration"] = self.expiration
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: object, where: str = "properties") -> MessageProperties:
        raw = {} if data is None else as_mapping(data, where)
        priority = opt_int(raw.get("priority"), where, "priority")
        if priority is not None and not 0 <= priority <= 255:
            raise MalformedMessage(f"{where}.priority", f"must be 0-255, got {priority}")
        expiration = raw.get("expiration")
        if isinstance(expiration, (int, float)) and not isinstance(expiration, bool):
            expiration = str(int(expiration))
        return cls(
            correlation_id=opt_str(raw.get("correlation_id"), where, "correlation_id"),
            reply_to=opt_str(raw.get("reply_to"), where, "reply_to"),
            delivery_mode=opt_int(raw.get("delivery_mode"), where, "delivery_mode"),
            priority=priority,
            expiration=opt_str(expiration, where, "expiration"),
            extra=unknown_keys(raw, _PROPERTY_FIELDS),
        )


@dataclass(slots=True)
class TaskMessage:
    """One task message, whatever protocol version it arrived in."""

    headers: TaskHeaders
    args: list[Any] = field(default_factory=list[Any])
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    embed: Embed = field(default_factory=Embed)
    properties: MessageProperties = field(default_factory=MessageProperties)
    #: The protocol the message was read from: 2, or 1 for v1 and hybrid messages.
    protocol: int = 2

    @property
    def id(self) -> str:
        return self.headers.id

    @property
    def name(self) -> str:
        """The registered task name (not the ``shadow``, which is for display only)."""
        return self.headers.task

    @classmethod
    def decode(
        cls,
        headers: Mapping[str, Any] | None,
        properties: Mapping[str, Any] | None,
        body: object,
    ) -> TaskMessage:
        """Read a received message; ``body`` is the deserialized payload.

        v2 is recognised by a ``task`` header and a body that is not a dict holding ``args``
        (the rule Celery's worker applies). A dict body is v1, or "hybrid" when the headers
        also name the task; both are converted to the v2 model.
        """
        raw_headers = {} if headers is None else as_mapping(headers, "headers")
        props = MessageProperties.from_dict(properties)
        if is_mapping(body):
            return _from_v1(raw_headers, props, as_mapping(body, "body"))
        if "task" not in raw_headers:
            raise MalformedMessage(
                "headers.task",
                "missing: a protocol v2 message names its task in the headers "
                "(a v1 message would have a dict body)",
            )
        parts = as_list(body, "body")
        if len(parts) != 3:
            raise MalformedMessage(
                "body", f"expected [args, kwargs, embed], got a list of {len(parts)} items"
            )
        args, kwargs, embed = parts
        return cls(
            headers=TaskHeaders.from_dict(raw_headers),
            args=as_list(args, "body[0]"),
            kwargs=_kwargs(kwargs, "body[1]"),
            embed=Embed.from_dict(embed),
            properties=props,
        )

    def encode(self) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        """``(headers, properties, body)`` in protocol v2's layout; the body is not serialized."""
        return (
            self.headers.to_dict(),
            self.properties.to_dict(),
            [list(self.args), dict(self.kwargs), self.embed.to_dict()],
        )

    @classmethod
    def create(
        cls,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        eta: datetime | None = None,
        expires: datetime | None = None,
        group: str | None = None,
        group_index: int | None = None,
        retries: int = 0,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        shadow: str | None = None,
        origin: str | None = None,
        ignore_result: bool = False,
        replaced_task_nesting: int = 0,
        stamps: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        embed: Embed | None = None,
        reply_to: str | None = None,
        priority: int | None = None,
        delivery_mode: int = 2,
        now: datetime | None = None,
        argsrepr: str | None = None,
        kwargsrepr: str | None = None,
    ) -> TaskMessage:
        """Build a new message with the defaults Celery's client fills in.

        ``root_id`` defaults to the task's own id, ``origin`` to ``gen<pid>@<host>``, the
        reprs to a 1024-character ``repr``, and ``expires`` also sets the AMQP
        ``expiration`` property (milliseconds from ``now``, never negative).
        """
        task_id = id or uuid4_text()
        kw = dict(kwargs or {})
        stamp_map = dict(stamps or {})
        expiration: str | None = None
        if expires is not None:
            current = now or datetime.now(timezone.utc)
            if expires.tzinfo is None and current.tzinfo is not None:
                current = current.replace(tzinfo=None)
            millis = (expires - current).total_seconds() * 1000
            expiration = str(max(int(millis), 0))
        return cls(
            headers=TaskHeaders(
                task=task,
                id=task_id,
                shadow=shadow,
                eta=eta,
                expires=expires,
                group=group,
                group_index=group_index,
                retries=retries,
                timelimit=(time_limit, soft_time_limit),
                root_id=root_id or task_id,
                parent_id=parent_id,
                argsrepr=safe_repr(tuple(args)) if argsrepr is None else argsrepr,
                kwargsrepr=safe_repr(kw) if kwargsrepr is None else kwargsrepr,
                origin=origin or default_origin(),
                ignore_result=ignore_result,
                replaced_task_nesting=replaced_task_nesting,
                stamped_headers=list(stamp_map) or None,
                stamps=stamp_map,
                extra=dict(headers or {}),
            ),
            args=list(args),
            kwargs=kw,
            embed=embed or Embed(),
            properties=MessageProperties(
                correlation_id=task_id,
                reply_to=reply_to,
                delivery_mode=delivery_mode,
                priority=priority,
                expiration=expiration,
            ),
        )


def _sig_list(sigs: list[Signature] | None) -> list[dict[str, Any]] | None:
    return None if sigs is None else [s.to_dict() for s in sigs]


def _read_timelimit(value: object, headers: str) -> tuple[float | None, float | None]:
    if value is None:
        return (None, None)
    where = f"{headers}.timelimit"
    items = as_list(value, where)
    if len(items) != 2:
        raise MalformedMessage(where, f"expected [hard, soft], got {describe(value)}")
    hard = opt_number(items[0], where, "[0]")
    soft = opt_number(items[1], where, "[1]")
    for limit, index in ((hard, 0), (soft, 1)):
        if limit is not None and limit < 0:
            raise MalformedMessage(f"{where}[{index}]", f"must not be negative, got {limit}")
    return (hard, soft)


def _from_v1(
    headers: dict[str, Any], properties: MessageProperties, body: dict[str, Any]
) -> TaskMessage:
    """Convert a v1 (or hybrid) message: everything but custom headers lives in the body."""
    hybrid = "task" in headers
    merged: dict[str, Any] = {
        key: body[key]
        for key in (
            "lang",
            "task",
            "id",
            "root_id",
            "parent_id",
            "group",
            "shadow",
            "eta",
            "expires",
            "retries",
            "timelimit",
            "argsrepr",
            "kwargsrepr",
            "origin",
            "group_index",
        )
        if key in body
    }
    if "group" not in merged and "taskset" in body:
        merged["group"] = body["taskset"]  # v1's old name for the group id
    merged.update(headers)  # message headers win, as Celery's hybrid conversion does
    if "task" not in merged:
        raise MalformedMessage("body.task", "missing: a v1 message names its task in the body")
    if "args" not in body and "kwargs" not in body:
        raise MalformedMessage("body.args", "missing: the message has neither args nor kwargs")
    task_headers = TaskHeaders.from_dict(merged, "body" if not hybrid else "headers")
    if as_bool(body.get("utc", True), "body.utc"):
        # utc=True (the v1 default) means naive times are UTC; with utc=False they are the
        # sender's local time and stay naive for the worker to interpret.
        task_headers.eta = _assume_utc(task_headers.eta)
        task_headers.expires = _assume_utc(task_headers.expires)
    args = as_list(or_empty(body.get("args"), []), "body.args")
    kwargs = _kwargs(or_empty(body.get("kwargs"), {}), "body.kwargs")
    if task_headers.argsrepr is None:
        task_headers.argsrepr = safe_repr(tuple(args))
    if task_headers.kwargsrepr is None:
        task_headers.kwargsrepr = safe_repr(kwargs)
    embed = Embed.from_dict({k: body.get(k) for k in ("callbacks", "errbacks", "chord")}, "body")
    return TaskMessage(
        headers=task_headers,
        args=args,
        kwargs=kwargs,
        embed=embed,
        properties=properties,
        protocol=1,
    )


def _kwargs(value: object, where: str) -> dict[str, Any]:
    """Task keyword arguments: a mapping whose keys are all strings, or ``f(**kw)`` fails."""
    kwargs = as_mapping(value, where)
    str_keys(kwargs, where)
    return kwargs


def _assume_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


_repr = reprlib.Repr()
_repr.maxstring = 256
_repr.maxother = 256
_repr.maxlevel = 4
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 32


# Plain values whose reprlib text is their builtin repr while it is this short (reprlib cuts
# ints past 40 characters, strings past 256).
_PLAIN_TYPES = (int, float, bool, type(None))
_PLAIN_REPR_MAX = 40


def _plain_repr(value: object) -> str | None:
    """``repr(value)`` when reprlib would write exactly that for ``value``, else None."""
    kind = type(value)
    if kind is str:
        text = repr(value)
        return text if len(text) <= _repr.maxstring else None
    if kind in _PLAIN_TYPES:
        text = repr(value)
        return text if len(text) <= _PLAIN_REPR_MAX else None
    return None


def _flat_repr(value: object) -> str | None:
    """reprlib's text for the usual call, a tuple or dict of a few plain values, written
    without reprlib's per-item dispatch; None for anything else (reprlib then writes it)."""
    if type(value) is tuple:
        items = cast("tuple[object, ...]", value)
        if len(items) > _repr.maxtuple:
            return None
        pieces: list[str] = []
        for item in items:
            text = _plain_repr(item)
            if text is None:
                return None
            pieces.append(text)
        return f"({pieces[0]},)" if len(pieces) == 1 else f"({', '.join(pieces)})"
    if type(value) is dict:
        mapping = cast("dict[object, object]", value)
        if len(mapping) > _repr.maxdict or not all(type(k) is str for k in mapping):
            return None
        pieces = []
        for key in sorted(cast("dict[str, object]", mapping)):  # reprlib sorts the keys
            text = _plain_repr(mapping[key])
            key_text = _plain_repr(key)
            if text is None or key_text is None:
                return None
            pieces.append(f"{key_text}: {text}")
        return f"{{{', '.join(pieces)}}}"
    return None


def safe_repr(value: object, maxsize: int = REPR_MAXSIZE) -> str:
    """A bounded ``repr`` for ``argsrepr``/``kwargsrepr`` (display only, never parsed).

    Never raises: a broken ``__repr__`` in user code must not stop a task from being sent.
    """
    try:
        text = _flat_repr(value)
        if text is None:
            text = _repr.repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= maxsize else text[: maxsize - 3] + "..."


def default_origin() -> str:
    """``gen<pid>@<hostname>``: the node name Celery gives a client that is not a worker."""
    return f"gen{os.getpid()}@{socket.gethostname()}"
