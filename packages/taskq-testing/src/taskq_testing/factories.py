# pyright: strict
"""Realistic messages and result records for tests, so suites do not hand-build wire data.

An envelope from :func:`make_envelope` is what taskq's client would publish: Celery protocol v2
headers, properties and a JSON body, wrapped the way kombu's virtual transports wrap it. Tests
tell messages apart by their task id (``headers["id"]``), which :func:`task_id_of` reads back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from taskq.contracts import Delivery
from taskq_protocol import Envelope, ResultMeta, TaskMessage, exception_to_dict, jsoncodec, states

__all__ = ["make_envelope", "make_meta", "make_failure", "task_id_of", "DEFAULT_TASK"]

#: The task name test messages carry unless told otherwise.
DEFAULT_TASK = "taskq_testing.noop"


def make_envelope(
    queue: str = "celery",
    *,
    task: str = DEFAULT_TASK,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    task_id: str | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
    content_encoding: str = "utf-8",
    headers: Mapping[str, Any] | None = None,
    priority: int | None = None,
) -> Envelope:
    """A task message for ``queue`` as the client publishes it.

    ``body`` replaces the serialized ``(args, kwargs, embed)`` with raw bytes (binary or large
    payloads); ``headers`` adds to Celery's headers; ``priority`` goes into the properties,
    where transports read it.
    """
    message = TaskMessage.create(task, args, kwargs, id=task_id, headers=headers)
    msg_headers, properties, payload = message.encode()
    return Envelope.create(
        jsoncodec.dumps(payload) if body is None else body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=msg_headers,
        properties=properties,
        routing_key=queue,
        priority=priority,
    )


def task_id_of(message: Envelope | Delivery) -> str:
    """The task id a message carries (its ``id`` header)."""
    envelope = message.envelope if isinstance(message, Delivery) else message
    task_id = envelope.headers.get("id")
    if not isinstance(task_id, str):
        raise ValueError(f"message has no task id header: {envelope.headers!r}")
    return task_id


def make_meta(
    status: str = states.SUCCESS,
    result: Any = None,
    *,
    task_id: str | None = None,
    **fields: Any,
) -> ResultMeta:
    """A result record; ``date_done`` defaults to now (UTC) for ready states.

    ``fields`` are the other :class:`~taskq_protocol.ResultMeta` fields (``traceback``,
    ``children``, ``group_id``, ``name``, ``args``, ...).
    """
    if "date_done" not in fields and status in states.READY_STATES:
        fields["date_done"] = datetime.now(timezone.utc)
    return ResultMeta(task_id=task_id or str(uuid.uuid4()), status=status, result=result, **fields)


def make_failure(
    exc: BaseException,
    *,
    task_id: str | None = None,
    traceback: str | None = "Traceback (most recent call last):\n  ...\n",
    **fields: Any,
) -> ResultMeta:
    """A FAILURE record holding ``exc`` in the stored exception form, done now."""
    return make_meta(
        states.FAILURE, exception_to_dict(exc), task_id=task_id, traceback=traceback, **fields
    )
