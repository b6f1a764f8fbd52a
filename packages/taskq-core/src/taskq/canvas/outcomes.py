"""What a finished task means for the rest of its workflow, on the worker's side.

- :func:`report_chord_part`: a header task ended; count it, and if it completed the chord,
  send the body (or fail it). The backend hands the parts to one reporter under a lease
  (``chord_part_done``); the chord is marked done only after the body was published
  (``chord_body_sent``), so a worker that dies in between leaves the chord to be completed
  again by a redelivered part (see :class:`~taskq.contracts.ResultBackend`). The body is sent
  under the id it was frozen with, so the rare second send is the same task.
- :func:`fail_signature`: a signature that will never run because something before it failed
  (a chord's body, the rest of a chain) is stored as FAILURE, so whoever waits on it gets the
  error instead of waiting forever, and its errbacks run. A failed step that belongs to a
  chord counts as that chord's failed part, so the chord around it fails too instead of
  hanging.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskq import contracts
from taskq.canvas.errbacks import call_errbacks
from taskq.canvas.signature import Signature, as_signature_list, maybe_signature, required
from taskq.contracts import ChordPart
from taskq.exceptions import ChordError
from taskq_protocol import ResultMeta, ResultRef, exception_to_dict, states

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["report_chord_part", "fire_chord_body", "chord_values", "fail_signature", "fail_chain"]

logger = logging.getLogger("taskq.task")


def report_chord_part(
    app: TaskQ,
    *,
    group_id: str,
    task_id: str,
    group_index: int | None,
    state: str,
    result: Any,
    body: Any,
) -> None:
    """Count one finished header task of the chord ``group_id``; complete it if it was last."""
    meta = ResultMeta(task_id=task_id, status=state, result=result, group_id=group_id)
    part = ChordPart(group_id, task_id, group_index, meta)
    parts = app.backend.chord_part_done(part, lease=contracts.CHORD_CLAIM_LEASE)
    if parts is not None:
        fire_chord_body(app, group_id, body, parts)


def fire_chord_body(app: TaskQ, group_id: str, body: Any, parts: list[ResultMeta]) -> None:
    """Send the chord's body with every part's result, or fail it if a part failed; then tell
    the backend the chord is done."""
    callback = required(body, app)
    failed = next((part for part in parts if part.status in states.PROPAGATE_STATES), None)
    if failed is not None:
        reason = f"Dependency {failed.task_id} raised {_exception_of(failed)!r}"
        fail_signature(app, callback, ChordError(reason), errbacks=True)
    else:
        try:
            callback.apply_async((chord_values(app, group_id, parts),))
        except Exception as exc:
            # The broker refused the body even after the publish retries: fail it where
            # its waiters look, as Celery does, rather than leave it PENDING for ever.
            logger.exception("chord %s: sending the body failed", group_id)
            fail_signature(app, callback, ChordError(f"Callback error: {exc!r}"), errbacks=True)
    app.backend.chord_body_sent(group_id)


def chord_values(app: TaskQ, group_id: str, parts: list[ResultMeta]) -> list[Any]:
    """The body's argument: the parts' results in header order, or nested as the header's
    results are when the client saved the header group (a header holding groups)."""
    values = [part.result for part in parts]
    saved = app.backend.restore_group(group_id)
    if saved is None:
        return values
    header = ResultRef.from_tuple(saved, f"chord {group_id}")
    members = header.children or ()
    if not any(member.children is not None for member in members):
        return values
    by_id = {part.task_id: part for part in parts}
    return [_value_of(app, member, by_id) for member in members]


def _value_of(app: TaskQ, ref: ResultRef, by_id: Mapping[str, ResultMeta]) -> Any:
    if ref.children is not None:
        return [_value_of(app, child, by_id) for child in ref.children]
    meta = by_id.get(ref.id) or app.backend.get(ref.id)
    return None if meta is None else meta.result


def _exception_of(meta: ResultMeta) -> Any:
    try:
        exc = meta.exception()
    except Exception:  # an exception the store named but this process cannot rebuild
        exc = None
    return exc if exc is not None else meta.result


# -- failing what will never run --------------------------------------------------------------


def fail_chain(app: TaskQ, chain: Iterable[Any] | None, exc: BaseException) -> None:
    """Store ``exc`` for every step of a request's remaining chain (it will never run)."""
    for raw in chain or ():
        sig = maybe_signature(raw, app)
        if sig is not None:
            fail_signature(app, sig, exc, errbacks=False)


def fail_signature(
    app: TaskQ,
    sig: Signature[Any, Any],
    exc: BaseException,
    *,
    errbacks: bool,
    traceback: str | None = None,
) -> None:
    """Record that ``sig`` failed with ``exc`` without running: every result it would have
    produced becomes FAILURE; with ``errbacks``, its errbacks run once."""
    from taskq.canvas.chain import is_chain
    from taskq.canvas.chord import is_chord
    from taskq.canvas.group import is_group

    if is_group(sig):
        for task in sig.tasks:
            fail_signature(app, task, exc, errbacks=errbacks, traceback=traceback)
        if errbacks and sig.options.get("link_error"):
            _call_errbacks_of(app, sig, sig.options["link_error"], exc, traceback)
        return
    if is_chord(sig):
        fail_signature(app, sig.body, exc, errbacks=errbacks, traceback=traceback)
        return
    if is_chain(sig):
        for task in sig.tasks:
            fail_signature(app, task, exc, errbacks=False, traceback=traceback)
        if errbacks and sig.tasks:
            found: list[Signature[Any, Any]] = []
            for source in (sig, *sig.tasks):
                for errback in as_signature_list(source.options.get("link_error"), app) or []:
                    if errback not in found:
                        found.append(errback)
            _call_errbacks_of(app, sig.tasks[-1], found, exc, traceback)
        return
    options = sig.options
    task_id = sig.id
    group_id = options.get("group_id")
    if task_id:
        app.backend.store(
            ResultMeta(
                task_id=task_id,
                status=states.FAILURE,
                result=exception_to_dict(exc),
                traceback=traceback,
                date_done=datetime.now(timezone.utc),
                group_id=group_id,
                parent_id=options.get("parent_id"),
            ),
            expires=app.conf.result_expires,
        )
    if errbacks and options.get("link_error"):
        _call_errbacks_of(app, sig, options["link_error"], exc, traceback)
    if task_id and group_id and options.get("chord"):
        report_chord_part(
            app,
            group_id=group_id,
            task_id=task_id,
            group_index=options.get("group_index"),
            state=states.FAILURE,
            result=exception_to_dict(exc),
            body=options["chord"],
        )
    fail_chain(app, options.get("chain"), exc)


def _call_errbacks_of(
    app: TaskQ, sig: Signature[Any, Any], errbacks: Any, exc: BaseException, traceback: str | None
) -> None:
    """Call ``errbacks`` for ``sig`` as if it had run and failed (Celery's fake request)."""
    from taskq.context import Request

    options = sig.options
    request = Request(
        id=sig.id,
        task=sig.task,
        args=list(sig.args),
        kwargs=dict(sig.kwargs),
        group=options.get("group_id"),
        group_index=options.get("group_index"),
        root_id=options.get("root_id"),
        parent_id=options.get("parent_id"),
        errbacks=[dict(e) for e in as_signature_list(errbacks, app) or []],
    )
    try:
        call_errbacks(app, request, exc, traceback)
    except Exception:
        logger.exception("errbacks of %s[%s] raised", sig.task, sig.id)
