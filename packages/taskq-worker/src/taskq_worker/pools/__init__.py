"""The worker's pools: where tasks run, and how they are stopped when they overrun.

- :mod:`~taskq_worker.pools.solo`: in the worker's own thread, one task at a time.
- :mod:`~taskq_worker.pools.threads`: in a fixed set of threads.
- :mod:`~taskq_worker.pools.prefork`: in forked child processes, Celery's default.

Each implements :class:`taskq.contracts.Pool` and is found through the ``taskq.pools`` entry
points, so nothing is imported here: a worker using the solo pool never loads the prefork
machinery.
"""
