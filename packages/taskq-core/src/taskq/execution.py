"""Running one task message: the tracer shared by the worker and ``Task.apply()``.

:func:`execute` runs a task with its request pushed, stores its state, sends what follows it
(callbacks, the next chain step, a chord's body when its last header task finishes) and fires
the task signals and hooks. It returns an :class:`Execution`, a small picklable summary from
which the worker decides how to acknowledge the message: the prefork pool runs this in a
child process and only the summary travels back.
"""

from __future__ import annotations

import logging
import os
import time
import traceback as tb
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.canvas.errbacks import call_errbacks
from taskq.canvas.outcomes import fail_chain, report_chord_part
from taskq.context import Request, pop_request, push_request
from taskq.exceptions import (
    Ignore,
    Reject,
    Retry,
    TaskRevokedError,
    TimeLimitExceeded,
)
from taskq_protocol import ResultMeta, TaskMessage, exception_to_dict, states
from taskq_protocol.message import safe_repr
from taskq_serializers import SerializationError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas import Signature
    from taskq.result import EagerResult
    from taskq.task import Task

__all__ = [
    "STOPPED_BY_POOL",
    "Execution",
    "execute",
    "mark_failed",
    "mark_revoked",
    "run_eagerly",
    "ACK",
    "REQUEUE",
    "DEAD_LETTER",
]

logger = logging.getLogger("taskq.task")

#: Exceptions a pool raises inside a running task to stop it; they end the run without a
#: result, because the pool reports the stop and the worker records it.
STOPPED_BY_POOL = (TimeLimitExceeded, TaskRevokedError)

#: How the worker should settle the message after an execution.
ACK, REQUEUE, DEAD_LETTER = "ack", "requeue", "dead_letter"


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened to one task run; small and picklable (it crosses process boundaries)."""

    task_id: str
    name: str
    state: str
    settle: str = ACK
    #: Why a message was dead-lettered or rejected, for the log and the dead-letter header.
    reason: str | None = None
    runtime: float = 0.0
    #: A short repr of the return value or the exception, for the worker's log line.
    summary: str = ""

    def __reduce__(
        self,
    ) -> tuple[type[Execution], tuple[str, str, str, str, str | None, float, str]]:
        # A prefork child pickles one per task: as constructor arguments it loads in half the
        # time of a slotted dataclass's generic state.
        return (
            Execution,
            (
                self.task_id,
                self.name,
                self.state,
                self.settle,
                self.reason,
                self.runtime,
                self.summary,
            ),
        )


@dataclass(slots=True)
class _Outcome:
    state: str
    retval: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    settle: str = ACK
    reason: str | None = None


def request_from(
    message: TaskMessage, *, hostname: str | None, delivery_info: Mapping[str, Any], is_eager: bool
) -> Request:
    h = message.headers
    embed = message.embed
    return Request(
        id=h.id,
        task=h.task,
        args=list(message.args),
        kwargs=dict(message.kwargs),
        retries=h.retries,
        is_eager=is_eager,
        eta=h.eta,
        expires=h.expires,
        group=h.group,
        group_index=h.group_index,
        chord=None if embed.chord is None else embed.chord.to_dict(),
        chain=None if embed.chain is None else [s.to_dict() for s in embed.chain],
        callbacks=None if embed.callbacks is None else [s.to_dict() for s in embed.callbacks],
        errbacks=None if embed.errbacks is None else [s.to_dict() for s in embed.errbacks],
        root_id=h.root_id,
        parent_id=h.parent_id,
        correlation_id=message.properties.correlation_id,
        reply_to=message.properties.reply_to,
        origin=h.origin,
        hostname=hostname,
        delivery_info=dict(delivery_info),
        timelimit=h.timelimit,
        headers=dict(h.extra),
        ignore_result=h.ignore_result,
        replaced_task_nesting=h.replaced_task_nesting,
        stamps=dict(h.stamps),
        shadow=h.shadow,
        priority=message.properties.priority,
    )


def execute(
    app: TaskQ,
    message: TaskMessage,
    *,
    hostname: str | None = None,
    delivery_info: Mapping[str, Any] | None = None,
    summarize: bool = True,
) -> Execution:
    """Run ``message``'s task here; store, chain and signal; say how to settle the message.

    ``summarize=False`` leaves :attr:`Execution.summary` empty: the repr of the return value
    is only for a log line, which a worker whose log level hides it does not write.
    """
    started = time.monotonic()
    info = delivery_info or {}
    task = app.tasks.get(message.name)
    if task is None:
        signals.task_unknown.send(sender=None, name=message.name, id=message.id, message=message)
        reason = f"unknown task {message.name!r}: not registered in this worker"
        return Execution(message.id, message.name, states.REJECTED, DEAD_LETTER, reason)
    expires = message.headers.expires
    if expires is not None and _aware(expires) <= datetime.now(timezone.utc):
        mark_revoked(app, message, "expired", hostname=hostname, delivery_info=info)
        return Execution(message.id, message.name, states.REVOKED, ACK, "expired")
    request = request_from(message, hostname=hostname, delivery_info=info, is_eager=False)
    outcome = _trace(app, task, request)
    return Execution(
        message.id,
        message.name,
        outcome.state,
        outcome.settle,
        outcome.reason,
        time.monotonic() - started,
        _summary(outcome) if summarize else "",
    )


def _summary(outcome: _Outcome) -> str:
    if outcome.exc is not None:
        return safe_repr(outcome.exc, 256)
    return safe_repr(outcome.retval, 256)


def _trace(app: TaskQ, task: Task[Any, Any], request: Request) -> _Outcome:
    task_id = request.id or ""
    args, kwargs = request.args, request.kwargs
    push_request(request)
    outcome = _Outcome(states.PENDING)
    try:
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=args, kwargs=kwargs)
        if _track_started(app, task) and not request.is_eager:
            _store(
                app,
                task,
                request,
                states.STARTED,
                {"pid": os.getpid(), "hostname": request.hostname},
            )
        outcome = _run(app, task, request)
    finally:
        signals.task_postrun.send(
            sender=task,
            task_id=task_id,
            task=task,
            args=args,
            kwargs=kwargs,
            retval=outcome.retval if outcome.exc is None else outcome.exc,
            state=outcome.state,
        )
        try:
            task.after_return(
                outcome.state,
                outcome.retval if outcome.exc is None else outcome.exc,
                task_id,
                args,
                kwargs,
                outcome.traceback,
            )
        except Exception:
            logger.exception("%s[%s]: after_return raised", task.name, task_id)
        pop_request()
    return outcome


def _run(app: TaskQ, task: Task[Any, Any], request: Request) -> _Outcome:
    task_id = request.id or ""
    args, kwargs = request.args, request.kwargs
    try:
        task.before_start(task_id, args, kwargs)
        retval = task(*args, **kwargs)
    except STOPPED_BY_POOL as exc:
        if request.is_eager:  # no pool: the task raised it itself, a failure like any other
            return _on_failure(app, task, request, exc)
        # The pool raised this in the task to stop it (hard time limit, revoke with terminate):
        # it reports the job as timed out or terminated, and the worker records that once.
        # Handling it here as well would store it twice and run errbacks twice.
        raise
    except Retry as retry:
        return _on_retry(app, task, request, retry)
    except Ignore:
        return _Outcome(states.IGNORED)
    except Reject as reject:
        signals.task_rejected.send(sender=task, message=request, exc=reject)
        settle = REQUEUE if reject.requeue else DEAD_LETTER
        return _Outcome(states.REJECTED, exc=reject, settle=settle, reason=str(reject.reason))
    except Exception as exc:
        if task.should_autoretry(exc):
            try:
                task.retry(
                    exc=exc,
                    countdown=task.autoretry_delay(request.retries),
                    **dict(task.retry_kwargs),
                )
            except Retry as retry:
                return _on_retry(app, task, request, retry)
            except Exception as final:
                return _on_failure(app, task, request, final)
        return _on_failure(app, task, request, exc)
    return _on_success(app, task, request, retval)


def _on_success(app: TaskQ, task: Task[Any, Any], request: Request, retval: Any) -> _Outcome:
    task_id = request.id or ""
    # Sent before the result is stored, so the stored meta names them as children (Celery's
    # order): a reader who sees SUCCESS can follow the workflow.
    _send_followers(app, request, retval)
    try:
        _store(app, task, request, states.SUCCESS, retval, children=_children(request))
    except SerializationError as exc:
        # The task ran, but its return value cannot be stored: that is the task's failure.
        return _on_failure(app, task, request, exc)
    _chord_part_done(app, request, states.SUCCESS, retval)
    signals.task_success.send(sender=task, result=retval)
    try:
        task.on_success(retval, task_id, request.args, request.kwargs)
    except Exception:
        logger.exception("%s[%s]: on_success raised", task.name, task_id)
    return _Outcome(states.SUCCESS, retval=retval)


def _on_retry(app: TaskQ, task: Task[Any, Any], request: Request, retry: Retry) -> _Outcome:
    task_id = request.id or ""
    exc = retry.exc or retry
    einfo = _format(exc)
    if not request.is_eager:
        _store(app, task, request, states.RETRY, exception_to_dict(exc), traceback=einfo)
    signals.task_retry.send(sender=task, request=request, reason=exc, einfo=einfo)
    try:
        task.on_retry(retry.exc, task_id, request.args, request.kwargs, einfo)
    except Exception:
        logger.exception("%s[%s]: on_retry raised", task.name, task_id)
    return _Outcome(states.RETRY, exc=retry, traceback=einfo)


def _on_failure(app: TaskQ, task: Task[Any, Any], request: Request, exc: BaseException) -> _Outcome:
    task_id = request.id or ""
    einfo = _format(exc)
    store = not _ignores_result(app, task, request) or _store_errors(app, task)
    if store and not request.is_eager:
        _store(
            app,
            task,
            request,
            states.FAILURE,
            exception_to_dict(exc),
            traceback=einfo,
            children=_children(request),
        )
    _chord_part_done(app, request, states.FAILURE, exception_to_dict(exc))
    if store and not request.is_eager:
        # The rest of the chain will never run: fail it where its waiters look.
        fail_chain(app, request.chain, exc)
    call_errbacks(app, request, exc, einfo)
    signals.task_failure.send(
        sender=task,
        task_id=task_id,
        exception=exc,
        args=request.args,
        kwargs=request.kwargs,
        traceback=exc.__traceback__,
        einfo=einfo,
    )
    try:
        task.on_failure(exc, task_id, request.args, request.kwargs, einfo)
    except Exception:
        logger.exception("%s[%s]: on_failure raised", task.name, task_id)
    acks = task.acks_on_failure_or_timeout
    if acks is None:
        acks = app.conf.task_acks_on_failure_or_timeout
    settle = ACK if acks else DEAD_LETTER
    return _Outcome(
        states.FAILURE,
        exc=exc,
        traceback=einfo,
        settle=settle,
        reason=None if acks else f"task failed: {exc!r}",
    )


# -- what follows a task ----------------------------------------------------------------------


def _send_followers(app: TaskQ, request: Request, retval: Any) -> None:
    """Send the callbacks and the next chain step with the result, in one publish.

    Several callbacks go out as one group (a group callback as its own), as Celery sends
    them; each is listed in this task's children.
    """
    if not request.chain and (request.callbacks is None or request.callbacks == []):
        return  # the usual case: nothing follows, so none of the canvas machinery is needed
    from taskq.canvas.group import group, is_group
    from taskq.canvas.sending import Plan, record_child
    from taskq.canvas.signature import as_signature_list, required

    callbacks = as_signature_list(request.callbacks, app) or []
    if not callbacks and not request.chain:
        return
    options: dict[str, Any] = {"parent_id": request.id, "root_id": request.root_id or request.id}
    if app.conf.task_inherit_parent_priority and request.priority is not None:
        options["priority"] = request.priority
    follow: list[tuple[Signature[Any, Any], dict[str, Any]]] = []
    if len(callbacks) > 1:
        groups = [sig for sig in callbacks if is_group(sig)]
        plain = [sig for sig in callbacks if not is_group(sig)]
        follow.extend((sig, options) for sig in groups)
        if plain:
            follow.append((group(plain, app=app), options))
    elif callbacks:
        follow.append((callbacks[0], options))
    if request.chain:
        remaining = list(request.chain)
        follow.append((required(remaining.pop(), app), {**options, "chain": remaining or None}))
    if app.conf.task_always_eager:
        for sig, sig_options in follow:  # apply_async runs them here
            sig.apply_async((retval,), **sig_options)
        return
    plan = Plan(app)
    results = [sig.plan(plan, (retval,), **sig_options) for sig, sig_options in follow]
    plan.send()
    for result in results:
        record_child(app, result)


def _children(request: Request) -> list[Any]:
    """The result tuples of what this run sent, as the stored meta's ``children``."""
    return [child.as_tuple() for child in request.children]


def _chord_part_done(app: TaskQ, request: Request, state: str, result: Any) -> None:
    if not request.chord or not request.group or request.is_eager:
        return
    report_chord_part(
        app,
        group_id=request.group,
        task_id=request.id or "",
        group_index=request.group_index,
        state=state,
        result=result,
        body=request.chord,
    )


# -- storing ------------------------------------------------------------------------------


def _ignores_result(app: TaskQ, task: Task[Any, Any], request: Request) -> bool:
    if request.ignore_result:
        return True
    if task.ignore_result is not None:
        return task.ignore_result
    return bool(app.conf.task_ignore_result)


def _store_errors(app: TaskQ, task: Task[Any, Any]) -> bool:
    if task.store_errors_even_if_ignored is not None:
        return task.store_errors_even_if_ignored
    return bool(app.conf.task_store_errors_even_if_ignored)


def _track_started(app: TaskQ, task: Task[Any, Any]) -> bool:
    return task.track_started if task.track_started is not None else app.conf.task_track_started


def _store(
    app: TaskQ,
    task: Task[Any, Any] | None,
    request: Request,
    state: str,
    result: Any,
    *,
    traceback: str | None = None,
    children: Sequence[Any] = (),
) -> None:
    if request.is_eager and not app.conf.task_store_eager_result:
        return
    if state == states.SUCCESS and task is not None and _ignores_result(app, task, request):
        return
    ready = state in states.READY_STATES
    meta = ResultMeta(
        task_id=request.id or "",
        status=state,
        result=result,
        traceback=traceback,
        children=list(children),
        date_done=datetime.now(timezone.utc) if ready else None,
        group_id=request.group,
        parent_id=request.parent_id,
    )
    if app.conf.result_extended:
        meta.name, meta.args, meta.kwargs = request.task, request.args, request.kwargs
        meta.worker, meta.retries = request.hostname, request.retries
        meta.queue = request.delivery_info.get("routing_key")
    app.backend.store(meta, expires=app.conf.result_expires)


def _format(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


# -- failures the worker records for a task that could not report itself -----------------------


def mark_failed(
    app: TaskQ,
    message: TaskMessage,
    exc: BaseException,
    *,
    hostname: str | None = None,
    delivery_info: Mapping[str, Any] | None = None,
) -> None:
    """Store FAILURE for a task whose process was killed (hard time limit, lost worker), run
    its errbacks and count it in its chord, as the task itself would have."""
    request = request_from(
        message, hostname=hostname, delivery_info=delivery_info or {}, is_eager=False
    )
    task = app.tasks.get(message.name)
    einfo = f"{type(exc).__name__}: {exc}"
    _store(app, task, request, states.FAILURE, exception_to_dict(exc), traceback=einfo)
    _chord_part_done(app, request, states.FAILURE, exception_to_dict(exc))
    fail_chain(app, request.chain, exc)
    call_errbacks(app, request, exc, einfo)
    if task is not None:
        signals.task_failure.send(
            sender=task,
            task_id=message.id,
            exception=exc,
            args=message.args,
            kwargs=message.kwargs,
            traceback=None,
            einfo=einfo,
        )


def mark_revoked(
    app: TaskQ,
    message: TaskMessage,
    reason: str,
    *,
    hostname: str | None = None,
    delivery_info: Mapping[str, Any] | None = None,
    terminated: bool = False,
    signum: int | None = None,
) -> None:
    """Store REVOKED (``reason``: revoked, expired or terminated) and fire ``task_revoked``."""
    request = request_from(
        message, hostname=hostname, delivery_info=delivery_info or {}, is_eager=False
    )
    error = TaskRevokedError(reason)
    _store(app, app.tasks.get(message.name), request, states.REVOKED, exception_to_dict(error))
    _chord_part_done(app, request, states.REVOKED, exception_to_dict(error))
    signals.task_revoked.send(
        sender=app.tasks.get(message.name),
        request=request,
        terminated=terminated,
        signum=signum,
        expired=reason == "expired",
    )


# -- eager ----------------------------------------------------------------------------------


def run_eagerly(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: Mapping[str, Any]
) -> EagerResult[Any]:
    """``Task.apply()``: run here with a real request; raise when ``task_eager_propagates``."""
    from taskq.calling import build_message
    from taskq.result import EagerResult

    app = task.app
    message = build_message(app, task.name, args, kwargs, options, task=task)
    request = request_from(
        message, hostname=app.nodename, delivery_info={"is_eager": True}, is_eager=True
    )
    outcome = _trace(app, task, request)
    if isinstance(outcome.exc, Retry) and outcome.exc.sig is not None:
        return outcome.exc.sig.apply()
    if (
        outcome.exc is not None
        and app.conf.task_eager_propagates
        and outcome.state == states.FAILURE
    ):
        raise outcome.exc
    value = outcome.exc if outcome.exc is not None else outcome.retval
    return EagerResult(
        message.id, value, outcome.state, traceback=outcome.traceback, name=task.name, app=app
    )
