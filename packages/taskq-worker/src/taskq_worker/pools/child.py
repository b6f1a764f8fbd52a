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

The parent may send several jobs at once; the child keeps them in order. It reads its pipe on
its main thread between jobs, and on a watcher thread while a job runs (see :class:`_Jobs`).
Because it replies to each job before starting the next, the parent always knows which job a
child is running: the first it sent that has no reply yet. Messages are pickled tuples. Parent
to child: ``(JOBS, [(seq, pickled job), ...])`` (a job is ``(task_id, target, args,
soft_time_limit)``), ``(TAKE, [seq, ...])`` to have jobs that have not started given back, or
``None`` to stop (jobs not started are given back first).
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
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn

from taskq.contracts import PoolJob

from .alarm import run_with_alarm
from .frames import Inbox
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

#: How often the watcher thread looks for the parent's messages while a job runs, and how
#: often it checks whether one runs while the child idles (its main thread reads then).
WATCH_INTERVAL = 0.005
IDLE_WATCH_INTERVAL = 0.05


class _Jobs:
    """The jobs the parent sent, read from the pipe by whichever thread is free to.

    The main thread reads the pipe itself between jobs: at once when nothing is queued (it
    blocks there while idle), otherwise only what is already waiting. No other thread stands
    between a job's arrival and its start, so an idle child starts a job without a thread
    hand-off. While a job runs, a watcher thread reads instead, every ``WATCH_INTERVAL``: that
    is what lets a child give jobs back (``TAKE``) or learn it must stop while it runs a long
    one. One thread reads at a time (``_reading``), whole frames, through one :class:`Inbox`;
    replies are written by both threads, one whole message at a time.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queued: deque[_Queued] = deque()
        #: Told to stop, or the parent is gone: run nothing more.
        self.closing = False
        #: The main thread runs a job (the watcher reads the pipe meanwhile).
        self.running = False
        self._inbox = Inbox(conn.fileno())
        self._poller = _poller(conn.fileno())  # the main thread's: one poll() at a time
        self._reading = threading.Lock()
        self._lock = threading.Lock()  # the queue and ``closing``
        self._sending = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._sending:
            self.conn.send_bytes(data)

    def next(self) -> _Queued | None:
        """The main thread's next job, waiting for one; None once the child should exit."""
        self.running = False
        while True:
            with self._lock:
                idle = not self.queued and not self.closing
            if idle or self._poller.poll(0):
                with self._reading:
                    # Blocks while idle; otherwise reads only what the poll saw waiting.
                    self._read()
            with self._lock:
                if self.closing:
                    return None
                if self.queued:
                    self.running = True
                    return self.queued.popleft()

    def watch(self) -> None:
        """The watcher thread: reads what the parent sends while the main thread runs a job."""
        poller = _poller(self.conn.fileno())
        while not self.closing:
            time.sleep(WATCH_INTERVAL if self.running else IDLE_WATCH_INTERVAL)
            if not self.running or not self._reading.acquire(blocking=False):
                continue
            try:
                # Still running: the main thread reads nothing until it holds the lock again.
                if self.running and poller.poll(0):
                    self._read()
            finally:
                self._reading.release()

    def _read(self) -> None:
        """Handle the frames one read of the pipe brings (with ``_reading`` held)."""
        try:
            frames = self._inbox.read()
        except OSError:
            frames = None
        if frames is None:  # the parent is gone
            with self._lock:
                self._close([])
            return
        for data in frames:
            message = pickle.loads(data)  # the parent's own tuples of bytes and ints
            if message is None:
                with self._lock:
                    self._close([item[0] for item in self.queued])
                return
            kind, items = message
            if kind == JOBS:
                self._accept(items)
            else:
                with self._lock:
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
        with self._lock:
            self.queued.extend(loaded)

    def _give_back(self, wanted: list[int]) -> None:
        """Return the wanted jobs that have not started (with ``_lock`` held); the others ran
        or run, and are answered as usual."""
        asked = set(wanted)
        returned = [item[0] for item in self.queued if item[0] in asked]
        if returned:
            kept = [item for item in self.queued if item[0] not in asked]
            self.queued.clear()
            self.queued.extend(kept)
        self.send(dumps((RETURNED, returned)))

    def _close(self, give_back: list[int]) -> None:
        """Stop, giving back the jobs not started that ``give_back`` names (with ``_lock``
        held): nothing more runs."""
        if give_back:
            self._give_back(give_back)
        self.queued.clear()
        self.closing = True


def _poller(fd: int) -> select.poll:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return poller


def _serve(conn: Connection, options: PoolOptions) -> None:
    jobs = _Jobs(conn)
    threading.Thread(target=jobs.watch, name="taskq-child-watcher", daemon=True).start()
    done = 0
    while (item := jobs.next()) is not None:
        seq, task_id, target, args, soft_time_limit = item
        job = PoolJob(task_id, target, args, soft_time_limit)
        ran, _ = run_with_alarm(job, enforce_hard=False)
        done += 1
        retire = _must_retire(done, options)
        jobs.send(_reply(seq, job, ran, retire))
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
