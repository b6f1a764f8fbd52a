"""The canvas: task calls as data (signatures) and the workflows built from them.

``add.s(2, 2) | mul.s(4)`` is a :class:`chain`, ``group(...)`` runs tasks in parallel,
``chord(header, body)`` (or ``group(...) | body``) runs a body with every header result,
``add.map(items)``/``add.starmap(items)``/``add.chunks(items, n)`` call one task over many
items. Everything is serialized as Celery serializes it, so a workflow started by a Celery
client completes on taskq workers and the other way round. One module per primitive:
:mod:`~taskq.canvas.signature`, :mod:`~taskq.canvas.chain`, :mod:`~taskq.canvas.group`,
:mod:`~taskq.canvas.chord`, :mod:`~taskq.canvas.maps`; :mod:`~taskq.canvas.sending` publishes a
workflow in one round trip and :mod:`~taskq.canvas.outcomes` is the worker's side (chord
completion, failing what will never run).
"""

from __future__ import annotations

from taskq.canvas.chain import chain
from taskq.canvas.chord import chord
from taskq.canvas.group import group
from taskq.canvas.maps import chunks, xmap, xstarmap
from taskq.canvas.signature import Signature, maybe_signature, signature

subtask = signature
maybe_subtask = maybe_signature

__all__ = [
    "Signature",
    "signature",
    "maybe_signature",
    "subtask",
    "maybe_subtask",
    "chain",
    "group",
    "chord",
    "xmap",
    "xstarmap",
    "chunks",
]
