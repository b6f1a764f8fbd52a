"""The taskq worker: consumes task messages, runs them in a pool, acknowledges them.

``Worker(app).start()`` is what ``taskq worker`` runs; :func:`get_task_logger` gives task code
a logger whose lines carry the running task's name and id.
"""

from __future__ import annotations

from taskq_worker.log import get_task_logger
from taskq_worker.worker import Worker

__version__ = "0.1.0"

__all__ = ["Worker", "get_task_logger"]
