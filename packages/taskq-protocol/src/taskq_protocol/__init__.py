"""Celery's message protocol v2 for Python, with no dependencies.

A typed model of task messages (:class:`TaskMessage`, also reading v1 and hybrid messages),
the envelope kombu's virtual transports store (:class:`Envelope`), result meta
(:class:`ResultMeta`, :class:`ResultRef`), stored exceptions, task states, and JSON with kombu's
type markers (:mod:`taskq_protocol.jsoncodec`). Malformed input raises a
:class:`ProtocolError` that names the field at fault.
"""

from __future__ import annotations

from taskq_protocol import jsoncodec, states
from taskq_protocol.envelope import Envelope
from taskq_protocol.errors import DecodeError, MalformedMessage, ProtocolError, UnsafeException
from taskq_protocol.exceptions import exception_from_dict, exception_to_dict
from taskq_protocol.message import Embed, MessageProperties, TaskHeaders, TaskMessage
from taskq_protocol.result import ResultMeta, ResultRef
from taskq_protocol.signature import Signature

__version__ = "0.1.0"

__all__ = [
    "TaskMessage",
    "TaskHeaders",
    "MessageProperties",
    "Embed",
    "Signature",
    "Envelope",
    "ResultMeta",
    "ResultRef",
    "exception_to_dict",
    "exception_from_dict",
    "ProtocolError",
    "DecodeError",
    "MalformedMessage",
    "UnsafeException",
    "jsoncodec",
    "states",
]
