"""A prefork child process, from ``fork()`` to ``os._exit()``.

The parent forks after the worker imported the app, so a child inherits the task registry, the
configuration and every imported module, exactly like Celery's prefork children: jobs only need
to name a module-level target. A child then:

1. resets the signal handlers the worker installed (``SIGINT`` is ignored: the parent handles
   shutdown and tells children what to do; ``SIGTERM`` and the rest get their default action,
   so ``terminate`` kills);
2. closes its copies of the parent's other pipes, so a dead sibling's pipe reaches EOF;
3. runs the ``initializer`` (``worker_process_init``) and says it is ready, or why it is not;
4. runs the jobs it is sent, one at a time and in order (the soft limit by ``SIGALRM``),
   replying after each before it starts the next, until it is told to stop, its parent goes
   away, or ``max_tasks_per_child`` / ``max_memory_per_child`` retire it (after finishing the
   job that crossed the line, as Celery does);
5. leaves with ``os._exit``, so it never runs the parent's ``atexit`` hooks or ``finally``
   blocks that ``fork`` copied into it.

Signals are blocked around ``fork`` so none of the worker's handlers can run in the child
before step 1 replaced them.

The parent may send several jobs at once; the child keeps them in order, and a reader thread
takes what the parent sends while a job runs. Because it replies to each job before starting the
next, the parent always knows which job a child is running: the first it sent that has no
reply yet. Messages are pickled tuples. Parent to child: ``(JOBS, [(seq, pickled job), ...])``
(a job is ``(task_id, target, args, soft_time_limit)``), ``(TAKE, [seq, ...])`` to have jobs
that have not started given back, or ``None`` to stop (jobs not started are given back first).
Child to parent: ``(READY,)``, ``(INIT_FAILED, description)``, after a job
``(DONE, seq, value, retire)`` / ``(LOST, seq, description, retire)``, and
``(RETURNED, [seq, ...])`` for jobs given back. A retiring child runs nothing after its reply:
the parent gives the jobs it still held to other children.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn

from taskq.contracts import PoolJob

from .alarm import run_with_alarm
from .jobs import Ran, escaped
from .options import PoolOptions

__all__ = ["DONE", "INIT_FAILED", "JOBS", "LOST", "READY", "RETURNED", "TAKE", "dumps", "spawn"]

logger = logging.getLogger("taskq_worker.pools")

READY, INIT_FAILED, DONE, LOST, RETURNED = "ready", "init-failed", "done", "lost", "returned"
JOBS, TAKE = "jobs", "take"

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


#: A job as a child holds it: (seq, task_id, target, args, soft_time_limit).
_Queued = tuple[int, str, Callable[..., Any], tuple[Any, ...], float | None]


class _Inbox:
    """The jobs the parent sent, filled by a reader thread while the main thread runs them.

    Reading on a thread of its own is what lets a child give jobs back while it runs a long
    one (a TAKE cannot wait for the job to end). Replies are written by both threads, one
    whole message at a time.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cond = threading.Condition()
        self.queued: deque[_Queued] = deque()
        #: Told to stop, or the parent is gone: run nothing more.
        self.closing = False
        self._sending = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._sending:
            self.conn.send_bytes(data)

    def next(self) -> _Queued | None:
        """The next job, waiting for one; None once the child should exit."""
        with self.cond:
            while not self.queued and not self.closing:
                self.cond.wait()
            return None if self.closing else self.queued.popleft()

    def read(self) -> None:
        """The reader thread: until the parent says stop or goes away."""
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):  # the parent is gone
                self._close([])
                return
            message = pickle.loads(data)  # the parent's own tuples of bytes and ints
            if message is None:
                with self.cond:
                    self._close([item[0] for item in self.queued])
                return
            kind, items = message
            if kind == JOBS:
                self._accept(items)
            else:
                with self.cond:
                    self._give_back(items)

    def _accept(self, items: list[tuple[int, bytes]]) -> None:
        loaded: list[_Queued] = []
        for seq, payload in items:
            try:
                task_id, target, args, soft_time_limit = pickle.loads(payload)
            except Exception as exc:  # the job's target or arguments cannot be loaded here
                why = f"the child could not unpickle the job: {exc!r}"
                self.send(dumps((LOST, seq, why, False)))
                continue
            loaded.append((seq, task_id, target, args, soft_time_limit))
        with self.cond:
            self.queued.extend(loaded)
            self.cond.notify()

    def _give_back(self, wanted: list[int]) -> None:
        """Return the wanted jobs that have not started (with the condition held); the
        others ran or run, and are answered as usual."""
        asked = set(wanted)
        returned = [item[0] for item in self.queued if item[0] in asked]
        if returned:
            kept = [item for item in self.queued if item[0] not in asked]
            self.queued.clear()
            self.queued.extend(kept)
        self.send(dumps((RETURNED, returned)))

    def _close(self, give_back: list[int]) -> None:
        with self.cond:
            if give_back:
                self._give_back(give_back)
            self.queued.clear()
            self.closing = True
            self.cond.notify()


def _serve(conn: Connection, options: PoolOptions) -> None:
    inbox = _Inbox(conn)
    threading.Thread(target=inbox.read, name="taskq-child-reader", daemon=True).start()
    done = 0
    while (item := inbox.next()) is not None:
        seq, task_id, target, args, soft_time_limit = item
        job = PoolJob(task_id, target, args, soft_time_limit)
        ran, _ = run_with_alarm(job, enforce_hard=False)
        done += 1
        retire = _must_retire(done, options)
        inbox.send(_reply(seq, job, ran, retire))
        if retire:
            return


def _reply(seq: int, job: PoolJob, ran: Ran, retire: bool) -> bytes:
    if ran.error is not None:
        return dumps((LOST, seq, escaped(job.task_id, ran.error), retire))
    try:
        return dumps((DONE, seq, ran.value, retire))
    except Exception as exc:  # the contract asks for a picklable value; say which was not
        why = f"the target returned a value that cannot be pickled: {exc!r}"
        return dumps((LOST, seq, why, retire))


def _must_retire(done: int, options: PoolOptions) -> bool:
    if options.max_tasks_per_child is not None and done >= options.max_tasks_per_child:
        return True
    limit = options.max_memory_per_child
    return limit is not None and peak_rss_kib() > limit


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB (``ru_maxrss``, which macOS gives in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak
