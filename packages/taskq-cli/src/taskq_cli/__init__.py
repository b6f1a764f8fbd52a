# pyright: strict
"""The ``taskq`` command: ``taskq -A proj worker``, ``call``, ``result``, ``purge``, ``status``.

It keeps Celery's command line (``celery -A proj worker -l INFO`` becomes
``taskq -A proj worker -l INFO``) and its way of finding the app, so scripts, Procfiles and
habits carry over. The entry point is :func:`taskq_cli.main.main`.
"""
