"""Signals, with Celery's names and calling convention.

``@task_success.connect`` (or ``.connect(sender=...)``) registers a receiver, called as
``receiver(signal=..., sender=..., **fields)``. A receiver that raises is logged and the others
still run, so a monitoring hook can never break task execution. Receivers are held weakly by
default, like Celery's, so a bound method does not keep its object alive.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, overload

__all__ = [
    "Signal",
    "before_task_publish",
    "after_task_publish",
    "task_received",
    "task_prerun",
    "task_postrun",
    "task_success",
    "task_retry",
    "task_failure",
    "task_internal_error",
    "task_revoked",
    "task_rejected",
    "task_unknown",
    "celeryd_init",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutting_down",
    "worker_shutdown",
    "heartbeat_sent",
    "setup_logging",
    "after_setup_logger",
    "after_setup_task_logger",
    "import_modules",
]

logger = logging.getLogger("taskq.signals")
Receiver = Callable[..., Any]


class Signal:
    """A named hook: ``connect`` receivers, ``send`` to call them."""

    def __init__(self, name: str, providing_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.providing_args = providing_args
        self._lock = threading.Lock()
        # (key, receiver ref, sender filter)
        self._receivers: list[tuple[object, Callable[[], Receiver | None], object]] = []

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    @overload
    def connect(
        self,
        receiver: Receiver,
        /,
        *,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> Receiver: ...

    @overload
    def connect(
        self,
        receiver: None = None,
        /,
        *,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> Callable[[Receiver], Receiver]: ...

    def connect(
        self,
        receiver: Receiver | None = None,
        /,
        *,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> Receiver | Callable[[Receiver], Receiver]:
        """Register ``receiver``: ``@sig.connect``, or ``@sig.connect(sender=X)`` with options."""

        def register(fn: Receiver) -> Receiver:
            ref: Callable[[], Receiver | None]
            if weak:
                ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") else weakref.ref(fn)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType, reportAttributeAccessIssue]
            else:
                ref = lambda fn=fn: fn  # noqa: E731 - a strong "reference" with the weakref interface
            key = dispatch_uid if dispatch_uid is not None else (_id(fn), _id(sender))
            with self._lock:
                self._receivers = [r for r in self._receivers if r[0] != key]
                self._receivers.append((key, ref, sender))
            return fn

        return register if receiver is None else register(receiver)

    def disconnect(
        self, receiver: Receiver | None = None, sender: object = None, dispatch_uid: object = None
    ) -> bool:
        key = dispatch_uid if dispatch_uid is not None else (_id(receiver), _id(sender))
        with self._lock:
            before = len(self._receivers)
            self._receivers = [r for r in self._receivers if r[0] != key]
            return len(self._receivers) != before

    @property
    def receivers(self) -> list[Receiver]:
        return [fn for _, ref, _ in self._receivers if (fn := ref()) is not None]

    def send(self, sender: object = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver for ``sender``; a receiver's exception is logged, not raised."""
        if not self._receivers:
            return []
        responses: list[tuple[Receiver, Any]] = []
        dead = False
        for _, ref, wanted in list(self._receivers):
            fn = ref()
            if fn is None:
                dead = True
                continue
            if wanted is not None and wanted is not sender and wanted != sender:
                continue
            try:
                responses.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("signal %s: receiver %r raised %r", self.name, fn, exc)
                responses.append((fn, exc))
        if dead:
            with self._lock:
                self._receivers = [r for r in self._receivers if r[1]() is not None]
        return responses


def _id(obj: object) -> object:
    if obj is None:
        return None
    if hasattr(obj, "__self__") and hasattr(obj, "__func__"):
        return (id(obj.__self__), id(obj.__func__))  # pyright: ignore[reportAttributeAccessIssue, reportUnknownArgumentType, reportUnknownMemberType]
    return id(obj)


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_retry = Signal("task_retry")
task_failure = Signal("task_failure")
task_internal_error = Signal("task_internal_error")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
celeryd_init = Signal("celeryd_init")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutting_down = Signal("worker_shutting_down")
worker_shutdown = Signal("worker_shutdown")
heartbeat_sent = Signal("heartbeat_sent")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
import_modules = Signal("import_modules")
