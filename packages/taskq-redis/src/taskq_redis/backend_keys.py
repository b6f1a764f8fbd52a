"""The result backend's key names, spelled exactly as Celery's Redis backend spells them.

A Celery client reads what a taskq worker stores (and the other way round) only if both use the
same names (reference §1.10, ``celery/backends/base.py`` ``BaseKeyValueStoreBackend``):

- ``celery-task-meta-<task id>``: a task's meta; also the pub/sub channel its writes are
  published on;
- ``celery-taskset-meta-<group id>``: a saved GroupResult (``{"result": <result tuple>}``);
- ``celery-taskset-meta-<group id><suffix>``: a chord's bookkeeping (:mod:`taskq_redis.chords`).

``global_keyprefix`` (``result_backend_transport_options``) goes in front of all of them. Celery
appends ``_`` to it unless it already ends in one of ``: _ - .``, so ``"tenant"`` gives
``tenant_celery-task-meta-...`` and ``"tenant:"`` gives ``tenant:celery-task-meta-...``. (The
*transport's* ``global_keyprefix`` is used verbatim: kombu and Celery differ here.)
"""

from __future__ import annotations

__all__ = ["ResultKeys", "TASK_PREFIX", "GROUP_PREFIX"]

TASK_PREFIX = "celery-task-meta-"
GROUP_PREFIX = "celery-taskset-meta-"
#: The characters that end a ``global_keyprefix`` Celery takes as it is.
_SEPARATORS = ":_-."


class ResultKeys:
    """Key names for one ``global_keyprefix``."""

    __slots__ = ("group_prefix", "task_prefix")

    def __init__(self, global_keyprefix: str = "") -> None:
        prefix = global_keyprefix
        if prefix and prefix[-1] not in _SEPARATORS:
            prefix += "_"
        self.task_prefix = prefix + TASK_PREFIX
        self.group_prefix = prefix + GROUP_PREFIX

    def task(self, task_id: str) -> str:
        """The key holding a task's meta, and the channel its writes are published on."""
        if not task_id:
            raise ValueError("a task id must not be empty")
        return self.task_prefix + task_id

    def group(self, group_id: str, suffix: str = "") -> str:
        """A saved group's key, or with ``suffix`` (``.j``, ``.s``, ...) one of its chord keys."""
        if not group_id:
            raise ValueError("a group id must not be empty")
        return self.group_prefix + group_id + suffix
