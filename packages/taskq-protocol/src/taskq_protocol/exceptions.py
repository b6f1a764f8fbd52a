"""Exceptions as result stores hold them: ``{"exc_type", "exc_message", "exc_module"}``.

Celery writes a failed task's exception in this form for every serializer but pickle:
``ValueError("bad", 42)`` becomes ``{"exc_type": "ValueError", "exc_message": ["bad", 42],
"exc_module": "builtins"}``.

Reading it back is where the danger lies: the store is not trusted code, and a record naming
``os.system`` as its "exception type" must never be called. So decoding here only looks a class
up among modules the process has already imported (it never imports one), accepts only
subclasses of ``Exception`` (a stored ``SystemExit`` must not stop the reader), and otherwise
builds a stand-in exception class with the same module and name, so ``except`` clauses and log
lines still read naturally.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, cast

from taskq_protocol import jsoncodec
from taskq_protocol.errors import MalformedMessage, UnsafeException
from taskq_protocol.fields import as_mapping, describe, is_list, is_mapping, opt_str, req_str
from taskq_protocol.message import safe_repr

__all__ = [
    "exception_to_dict",
    "exception_from_dict",
    "is_exception_dict",
    "stand_in_exception_class",
]

_stand_ins: dict[tuple[str, str], type[Exception]] = {}


def _json_encodable(value: object) -> bool:
    try:
        jsoncodec.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def exception_to_dict(
    exc: BaseException, encodable: Callable[[object], bool] = _json_encodable
) -> dict[str, Any]:
    """The stored form of ``exc``; arguments the serializer cannot hold become their repr."""
    exc_type = type(exc)
    return {
        "exc_type": exc_type.__qualname__,
        "exc_message": [arg if encodable(arg) else safe_repr(arg) for arg in exc.args],
        "exc_module": exc_type.__module__,
    }


def stand_in_exception_class(module: str, qualname: str) -> type[Exception]:
    """A plain ``Exception`` subclass named like a class this process cannot (or may not) use.

    The same name gives the same class every time, so callers can compare and catch it.
    """
    key = (module, qualname)
    cls = _stand_ins.get(key)
    if cls is None:
        name = qualname.rsplit(".", 1)[-1]
        cls = type(name, (Exception,), {"__module__": module, "__qualname__": qualname})
        _stand_ins[key] = cls
    return cls


def _dotted_name(value: str, key: str) -> str:
    # Names are only looked up and used to name a stand-in class, so any text will do, but
    # type() refuses NUL, and a megabyte of "class name" is an attack, not a class.
    if value and len(value) <= 512 and "\x00" not in value:
        return value
    raise MalformedMessage(f"exception.{key}", f"not a usable class or module name: {value!r:.80}")


def _lookup(module_name: str, qualname: str) -> object | None:
    """Walk ``module.Outer.Inner`` among already imported modules; ``None`` if absent."""
    obj: object | None = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    return obj


def exception_from_dict(data: Mapping[str, Any] | object) -> BaseException:
    """Rebuild an exception from its stored form, safely.

    Raises :class:`~taskq_protocol.errors.UnsafeException` when the record names something
    that exists but is not an exception class (an attack, or a corrupted store), and
    :class:`~taskq_protocol.errors.MalformedMessage` when the record is not of this form
    (no ``exc_type``, say).
    """
    raw = as_mapping(data, "exception")
    exc_type = _dotted_name(req_str(raw.get("exc_type"), "exception", "exc_type"), "exc_type")
    exc_module = _dotted_name(
        opt_str(raw.get("exc_module"), "exception", "exc_module") or "builtins", "exc_module"
    )
    message = raw.get("exc_message", [])
    args: list[object] = list(message) if is_list(message) else [message]
    found = _lookup(exc_module, exc_type)
    if found is None:
        cls: type[BaseException] = stand_in_exception_class(exc_module, exc_type)
    elif isinstance(found, type) and issubclass(found, Exception):
        cls = found
    elif isinstance(found, type) and issubclass(found, BaseException):
        # SystemExit, KeyboardInterrupt, GeneratorExit: re-raising one would end the caller.
        cls = stand_in_exception_class(exc_module, exc_type)
    else:
        raise UnsafeException(
            "exception.exc_type",
            f"{exc_module}.{exc_type} is {describe(cast(object, found))}, not an exception class; "
            "refusing to call it",
        )
    try:
        return cls(*args)
    except Exception:
        fallback = stand_in_exception_class(exc_module, exc_type)
        return fallback(*args)


def is_exception_dict(value: object) -> bool:
    """Whether ``value`` looks like a stored exception (has ``exc_type``)."""
    return is_mapping(value) and "exc_type" in value
