"""A prefork child process, from ``fork()`` to ``os._exit()``.

The parent forks after the worker imported the app, so a child inherits the task registry, the
configuration and every imported module, exactly like Celery's prefork children: jobs only need
to name a module-level target. A child then:

1. resets the signal handlers the worker installed (``SIGINT`` is ignored: the parent handles
   shutdown and tells children what to do; ``SIGTERM`` and the rest get their default action,
   so ``terminate`` kills);
2. closes its copies of the parent's other pipes, so a dead sibling's pipe reaches EOF;
3. runs the ``initializer`` (``worker_process_init``) and says it is ready, or why it is not;
4. runs jobs one at a time (the soft limit by ``SIGALRM``), replying after each, until it is
   told to stop, its parent goes away, or ``max_tasks_per_child`` / ``max_memory_per_child``
   retire it (after finishing the job that crossed the line, as Celery does);
5. leaves with ``os._exit``, so it never runs the parent's ``atexit`` hooks or ``finally``
   blocks that ``fork`` copied into it.

Signals are blocked around ``fork`` so none of the worker's handlers can run in the child
before step 1 replaced them.

Messages are pickled tuples. Parent to child: ``(task_id, target, args, soft_time_limit)``, or
``None`` to stop. Child to parent: ``(READY,)``, ``(INIT_FAILED, description)``, or after a job
``(DONE, value, retire)`` / ``(LOST, description, retire)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn

from taskq.contracts import PoolJob

from .alarm import run_with_alarm
from .jobs import Ran, escaped
from .options import PoolOptions

__all__ = ["DONE", "INIT_FAILED", "LOST", "READY", "dumps", "spawn"]

logger = logging.getLogger("taskq_worker.pools")

READY, INIT_FAILED, DONE, LOST = "ready", "init-failed", "done", "lost"

#: Handlers the worker may have installed, reset to their default action in a child.
_RESET = (
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCHLD,
)
_BLOCKED = {signal.SIGINT, *_RESET}


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def spawn(
    options: PoolOptions, siblings: Iterable[Connection], fds: Iterable[int]
) -> tuple[int, Connection]:
    """Fork a child; returns its pid and the parent's end of its pipe.

    ``siblings`` (the other children's pipes) and ``fds`` are closed in the child.
    """
    parent_end, child_end = Pipe()
    inherited = [parent_end, *siblings]
    closed = list(fds)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        pid = os.fork()
        if pid == 0:
            _live(child_end, inherited, closed, options, mask)
    except OSError:
        parent_end.close()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child_end.close()
    return pid, parent_end


def _live(
    conn: Connection,
    inherited: list[Connection],
    fds: list[int],
    options: PoolOptions,
    mask: Iterable[int],
) -> NoReturn:
    code = 1
    try:
        for signum in _RESET:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for other in inherited:
            other.close()
        for fd in fds:
            os.close(fd)
        if _initialize(conn, options.initializer):
            _serve(conn, options)
            code = 0
    except BaseException:  # the child ends here whatever happened; say why on its stderr
        logger.exception("prefork child %d failed", os.getpid())
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to save
                stream.flush()
        os._exit(code)


def _initialize(conn: Connection, initializer: Callable[[], None] | None) -> bool:
    if initializer is not None:
        try:
            initializer()
        except Exception as exc:  # reported to the parent, which refuses to start
            logger.exception("the prefork pool's initializer failed in child %d", os.getpid())
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            conn.send_bytes(dumps((INIT_FAILED, trace)))
            return False
    conn.send_bytes(dumps((READY,)))
    return True


def _serve(conn: Connection, options: PoolOptions) -> None:
    done = 0
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        try:
            message = pickle.loads(data)
        except Exception as exc:  # the job's target or arguments cannot be loaded here
            reply = (LOST, f"the child could not unpickle the job: {exc!r}", False)
            conn.send_bytes(dumps(reply))
            continue
        if message is None:
            return
        task_id, target, args, soft_time_limit = message
        job = PoolJob(task_id, target, args, soft_time_limit)
        ran, _ = run_with_alarm(job, enforce_hard=False)
        done += 1
        retire = _must_retire(done, options)
        conn.send_bytes(_reply(job, ran, retire))
        if retire:
            return


def _reply(job: PoolJob, ran: Ran, retire: bool) -> bytes:
    if ran.error is not None:
        return dumps((LOST, escaped(job.task_id, ran.error), retire))
    try:
        return dumps((DONE, ran.value, retire))
    except Exception as exc:  # the contract asks for a picklable value; say which was not
        return dumps((LOST, f"the target returned a value that cannot be pickled: {exc!r}", retire))


def _must_retire(done: int, options: PoolOptions) -> bool:
    if options.max_tasks_per_child is not None and done >= options.max_tasks_per_child:
        return True
    limit = options.max_memory_per_child
    return limit is not None and peak_rss_kib() > limit


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB (``ru_maxrss``, which macOS gives in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak
