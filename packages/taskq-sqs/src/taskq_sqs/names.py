"""Queue names as kombu's SQS transport turns them into SQS queue names.

SQS allows letters, digits, ``-`` and ``_`` (and a ``.fifo`` suffix), so kombu prefixes the
name with ``queue_name_prefix``, turns dots into dashes and every other punctuation mark into
an underscore, keeping a final ``.fifo``. ``celery`` stays ``celery``; ``celery.dlq`` becomes
``celery-dlq``; ``orders.fifo`` stays ``orders.fifo``. Both sides must agree for a Celery
worker and a taskq client to meet on one queue.
"""

from __future__ import annotations

import string

__all__ = ["sqs_queue_name", "is_fifo"]

_FIFO = ".fifo"
_TABLE = {ord(c): "_" for c in string.punctuation if c not in "-_."}
_TABLE[ord(".")] = "-"


def sqs_queue_name(queue: str, prefix: str = "") -> str:
    """The SQS name of the taskq/Celery queue ``queue``."""
    name = prefix + queue
    if name.endswith(_FIFO):
        return name[: -len(_FIFO)].translate(_TABLE) + _FIFO
    return name.translate(_TABLE)


def is_fifo(sqs_name: str) -> bool:
    return sqs_name.endswith(_FIFO)
