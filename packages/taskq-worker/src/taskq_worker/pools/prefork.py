"""The prefork pool: ``concurrency`` forked child processes run the tasks (Celery's default).

Processes give real parallelism for CPU-bound tasks, isolation (a task that leaks or crashes
takes down its child, not the worker), and limits that always work: a child running past its
hard time limit is killed with ``SIGKILL`` and replaced. POSIX only (it needs ``fork``).
Forking a process that runs threads copies locks other threads may hold; Python 3.12+ warns
about it. Every forking pool, Celery's included, lives with this; the child's own code takes no
lock of the parent's except logging's, which Python re-creates after ``fork``.

A supervisor thread in the parent reads the children's replies, notices a child that died (its
pipe closes, or ``waitpid`` says so), reports the job it was running and forks a replacement.

Jobs are sent to ready children several at a time, fewest-loaded child first and up to
``DEPTH`` each, so a child finds its next job waiting instead of idling through the parent's
round trip: one pipe message carries many jobs, and one wake-up of the supervisor reads many
replies. A child runs its jobs in order and replies to each before starting the next, so the
parent knows which one it runs: the first it has no reply for. Jobs beyond that wait in the
parent. ``free_slots`` counts idle children minus waiting jobs (the contract's one job per
child); :attr:`~PreforkPool.room` counts what :meth:`~PreforkPool.apply_many` can still place.
Nothing waits long behind a slow job: a job with a hard time limit goes to an idle child only
(its limit counts from when it was sent, which is when it starts), and jobs queued behind one
that has run for ``STEAL_AFTER`` seconds while another child idles are taken back and given to
that child. A job that a child had not started when it died, retired or was told to stop goes
to another child.

Outcomes: ``done`` when the child replied; ``timeout`` when the hard limit killed it;
``terminated`` when :meth:`~PreforkPool.terminate` signalled it (``SIGTERM`` unless told
otherwise; a reply that arrives first wins, and the child is replaced either way), or took it
back before it started; ``lost`` when it died on its own, and for the jobs ``stop(wait=False)``
killed (``SIGKILL``, at once) or never started. ``stop(wait=True)`` runs every job applied,
waiting ones included. One race remains, as in Celery: a child signalled for a job that ended
at that very moment may have started its next one, which is then reported ``lost``, its process
having died.

Options: ``max_tasks_per_child``; ``max_memory_per_child`` (KiB of peak resident memory,
checked after each job); ``initializer``, run in each new child before its first job.
:meth:`~PreforkPool.start` returns once every child ran it, and raises if it failed in one;
a later failure is logged and that child is forked again a second later.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from taskq.contracts import JobOutcome, PoolJob

from .child import DONE, INIT_FAILED, JOBS, LOST, READY, RETURNED, TAKE, dumps, spawn
from .frames import Inbox, readable
from .jobs import Fate, check_job, limits, never_started, timed_out
from .options import check_concurrency, check_count, parse_options

__all__ = ["DEPTH", "STEAL_AFTER", "PreforkPool"]

logger = logging.getLogger("taskq_worker.pools")

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"
#: How many jobs a child holds at most (the one it runs included).
DEPTH = 16
#: How long a child's current job may run before the jobs queued behind it go to an idle child.
STEAL_AFTER = 0.05
#: How often the supervisor asks the kernel which children exited: a child's pipe stays open
#: after it died if it forked a grandchild that inherited the pipe.
_EXIT_POLL = 1.0
#: How long to wait before forking again after fork() or a child's initializer failed.
_RESPAWN_DELAY = 1.0
#: How long a child whose pipe closed may take to finish exiting before it is killed.
_EXIT_GRACE = 0.1
_STOP = dumps(None)
_TAKEN_BACK = "terminated before it started"


@dataclass(eq=False, slots=True)
class _Child:
    pid: int
    conn: Connection
    #: Its initializer ran; it waits for jobs.
    ready: bool = False
    #: Jobs sent and not answered, by sequence number, in the order it runs them: the first
    #: one is running (or about to).
    jobs: dict[int, PoolJob] = field(default_factory=dict[int, PoolJob])
    #: When the first job became the first (``time.monotonic()``).
    head_since: float = 0.0
    #: When the first job passes its hard time limit.
    hard_at: float | None = None
    #: It gets no more jobs and exits once it has none (or already is exiting).
    retiring: bool = False
    #: Why the parent signalled it, and while it ran which job; decides that job's outcome.
    fate: Fate | None = None
    fated: int | None = None
    #: TAKE requests it has not answered yet.
    takes: int = 0
    #: Jobs ``terminate`` asked back: reported terminated when returned.
    cancelled: set[int] = field(default_factory=set[int])
    #: What it wrote and the parent did not read as whole messages yet.
    inbox: Inbox = field(init=False)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.conn.fileno())

    @property
    def open(self) -> bool:
        """It takes new jobs: ready, staying, not signalled."""
        return self.ready and not self.retiring and self.fate is None

    @property
    def idle(self) -> bool:
        return self.open and not self.jobs


class PreforkPool:
    """Runs jobs in forked child processes; see the module docstring."""

    name = "prefork"

    def __init__(self, concurrency: int, **options: Any) -> None:
        self._size = check_concurrency(self.name, concurrency)
        self._options = parse_options(self.name, options)
        if not hasattr(os, "fork"):
            raise RuntimeError("the prefork pool needs os.fork(); use the threads or solo pool")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # start() waits for ready children
        self._state = _NEW
        self._on_outcome: Callable[[JobOutcome], None] | None = None
        self._children: dict[Connection, _Child] = {}
        #: Children by the fd of their pipe, and what the supervisor waits on (their pipes and
        #: the wake-up pipe), kept across passes rather than built for each wait.
        self._by_fd: dict[int, _Child] = {}
        self._poller = select.poll()
        #: Jobs applied and not sent: (sequence number, job, pickled job).
        self._pending: deque[tuple[int, PoolJob, bytes]] = deque()
        self._seq = itertools.count(1)
        #: stop(wait=False) ran: jobs not started are reported, not given to other children.
        self._killing = False
        self._wake_fds: tuple[int, int] | None = None  # wakes the supervisor's wait()
        self._supervisor: threading.Thread | None = None
        #: Supervised by the caller's step() calls instead of a thread (start_driven).
        self._driven = False
        #: Why the last child that could not start failed (start() raises it).
        self._init_error: str | None = None
        self._respawn_at = 0.0
        self._next_exit_poll = 0.0

    # -- the Pool contract -------------------------------------------------------------------

    def start(self, on_outcome: Callable[[JobOutcome], None]) -> None:
        """Start the supervisor, which forks the children; return once all of them are ready."""
        self._start(on_outcome, driven=False)

    def start_driven(self, on_outcome: Callable[[JobOutcome], None]) -> None:
        """Start without a supervisor thread: the caller supervises with :meth:`step` (and
        :meth:`stop` finishes on the caller's thread). Returns once every child is ready."""
        self._start(on_outcome, driven=True)

    def _start(self, on_outcome: Callable[[JobOutcome], None], *, driven: bool) -> None:
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(f"the prefork pool cannot start: it is {self._state}")
            self._state = _RUNNING
            self._on_outcome = on_outcome
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            self._wake_fds = (read_fd, write_fd)
            self._poller.register(read_fd, select.POLLIN)
            self._driven = driven
            if not driven:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="taskq-prefork-supervisor", daemon=True
                )
                self._supervisor.start()
                self._changed.wait_for(self._started)
        while driven and not self._started_now():
            self._pass(None)
        with self._lock:
            error = self._init_error
        if error is not None:
            self.stop(wait=False)
            raise RuntimeError(f"the prefork pool could not start a child: {error}")

    def step(self, timeout: float | None) -> None:
        """Supervise once, on this thread (after :meth:`start_driven`): wait up to ``timeout``
        (None: until something happens) for the children, a :meth:`wake` or a due timer,
        and handle it. Outcomes are reported on this thread, before it returns."""
        self._pass(timeout)

    def wake(self) -> None:
        """Make a :meth:`step` in progress return now, from any thread, and from a signal
        handler: it takes no lock (the handler may have interrupted this very thread while it
        held the pool's)."""
        fds = self._wake_fds
        if fds is not None:
            with contextlib.suppress(OSError):  # full (it wakes anyway), or just closed
                os.write(fds[1], b"\0")

    def apply(self, job: PoolJob) -> None:
        """Send ``job`` to a child, or queue it for the next one; returns at once."""
        self.apply_many((job,))

    def apply_many(self, jobs: Sequence[PoolJob]) -> None:
        """Apply several jobs, sent with one message per child; returns at once.

        Either every job is accepted or, if one is malformed or cannot be pickled, none is.
        """
        prepared: list[tuple[PoolJob, bytes]] = []
        for job in jobs:
            check_job(job)
            soft, _ = limits(job)
            try:
                payload = dumps((job.task_id, job.target, job.args, soft))
            except Exception as exc:
                raise TypeError(
                    f"prefork pool: job {job.task_id} cannot be pickled for a child process "
                    f"(targets must be module-level functions with picklable arguments): {exc}"
                ) from exc
            prepared.append((job, payload))
        with self._lock:
            if self._state != _RUNNING:
                raise RuntimeError(f"the prefork pool is not running (it is {self._state})")
            self._pending.extend((next(self._seq), job, payload) for job, payload in prepared)
            self._dispatch()
            if any(job.time_limit is not None for job, _ in prepared):
                self._wake()  # the supervisor's next timeout must include the deadline

    def terminate(self, task_id: str, signum: int | None = None) -> bool:
        """Signal the child running ``task_id`` (``SIGTERM`` by default; it is replaced), or
        take the job back if it has not started (reported ``terminated`` all the same)."""
        return self._cancel(task_id, signal.SIGTERM if signum is None else signal.Signals(signum))

    def withdraw(self, task_id: str) -> bool:
        """Take ``task_id`` back if it has not started: it is reported ``terminated``
        ("terminated before it started"), unless its child started it meanwhile and it ends
        as usual. False if it is running or unknown."""
        return self._cancel(task_id, None)

    def _cancel(self, task_id: str, sig: signal.Signals | None) -> bool:
        reports: list[JobOutcome] = []
        found = False
        with self._lock:
            holders = [
                child
                for child in self._children.values()
                if any(job.task_id == task_id for job in child.jobs.values())
            ]
            for child in holders:
                self._receive(child, reports)  # a reply already sent wins
            for item in [item for item in self._pending if item[1].task_id == task_id]:
                found = True
                self._pending.remove(item)
                reports.append(JobOutcome(task_id, "terminated", _TAKEN_BACK))
            for child in holders:
                for seq, job in list(child.jobs.items()):
                    if job.task_id != task_id:
                        continue
                    if seq != next(iter(child.jobs)):
                        found = True
                        if seq not in child.cancelled:
                            child.cancelled.add(seq)
                            self._take(child, [seq])
                    elif sig is not None:
                        found = True
                        if child.fate is None:
                            child.fate = ("terminated", f"terminated by {sig.name}")
                            child.fated, child.hard_at = seq, None
                            _kill(child.pid, sig)
        for outcome in reports:
            self._report(outcome)
        return found

    def grow(self, n: int = 1) -> None:
        """Add ``n`` children, forked by the supervisor; ``free_slots`` rises as they are ready."""
        check_count(self.name, "grow", n)
        with self._lock:
            self._size += n
            self._wake()

    def shrink(self, n: int = 1) -> None:
        """Retire ``n`` children: idle ones at once, busy ones after their job (the jobs
        queued behind it go to other children)."""
        check_count(self.name, "shrink", n)
        with self._lock:
            if n > self._size:
                raise ValueError(f"cannot shrink the prefork pool by {n}: it has {self._size}")
            self._size -= n
            staying = [child for child in self._children.values() if not child.retiring]
            staying.sort(key=lambda child: (bool(child.jobs), not child.ready))
            for child in staying[:n]:
                if child.ready and not child.jobs:
                    self._stop_child(child)
                else:
                    child.retiring = True  # told to stop once it is ready or its job ended
                    queued = list(child.jobs)[1:]
                    if queued:
                        self._take(child, queued)

    @property
    def free_slots(self) -> int:
        with self._lock:
            if self._state != _RUNNING:
                return 0
            idle = sum(1 for child in self._children.values() if child.idle)
            return max(0, idle - len(self._pending))

    @property
    def room(self) -> int:
        """How many more jobs the children can hold now (``DEPTH`` each, running ones
        included), less those waiting in the parent: what a worker may apply at once."""
        with self._lock:
            if self._state != _RUNNING:
                return 0
            space = sum(DEPTH - len(c.jobs) for c in self._children.values() if c.open)
            return max(0, space - len(self._pending))

    def stop(self, *, wait: bool = True) -> None:
        """Run every job applied (``wait``) or kill the children now; then reap them all."""
        dropped: list[JobOutcome] = []
        with self._lock:
            if self._state == _NEW:
                self._state = _STOPPED
                return
            self._state = _STOPPED
            if not wait:
                self._killing = True
                dropped = self._drop_pending()
                for child in self._children.values():
                    if child.jobs and child.fate is None:
                        child.fate = ("lost", "the pool stopped without waiting: child killed")
                        child.fated = next(iter(child.jobs))
                    _kill(child.pid, signal.SIGKILL)
            self._wake()
            supervisor = self._supervisor
        for outcome in dropped:
            self._report(outcome)
        if self._driven:
            while self._pass(None):
                pass
        elif supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()

    # -- the supervisor ----------------------------------------------------------------------

    def _supervise(self) -> None:
        while self._pass(None):
            pass

    def _pass(self, limit: float | None) -> bool:
        """One round of supervision: wait for a child's message, a wake-up, what is due or
        ``limit``, and handle it all. False once there is nothing left to supervise."""
        dropped: list[JobOutcome] = []
        with self._lock:
            if self._wake_fds is None:
                return False  # finished
            wake_fd = self._wake_fds[0]
            timeout = self._timeout(time.monotonic())
            if limit is not None:
                timeout = limit if timeout is None else min(timeout, limit)
            finished = self._state != _RUNNING and not self._children
            if finished:
                dropped = self._drop_pending()  # no child left to run them (shrunk to 0)
                self._close_wake_fds()
                self._changed.notify_all()
        if finished:
            for outcome in dropped:
                self._report(outcome)
            return False
        ready = self._poller.poll(None if timeout is None else timeout * 1000)
        reports: list[JobOutcome] = []
        with self._lock:
            for fd, _ in ready:
                if fd == wake_fd:
                    os.read(fd, 4096)
                elif child := self._by_fd.get(fd):
                    self._receive(child, reports, readable=True)
            now = time.monotonic()
            self._expire(now)
            if now >= self._next_exit_poll:
                self._next_exit_poll = now + _EXIT_POLL
                self._poll_exits(reports)
            self._refill(now)
            self._dispatch()
            self._rebalance(now)
            if self._state != _RUNNING and not self._pending:
                for child in self._children.values():
                    if not child.jobs and not child.retiring:
                        self._stop_child(child)
            self._changed.notify_all()
        for outcome in reports:
            self._report(outcome)
        return True

    def _started(self) -> bool:
        """Every child is ready, or one could not start (with the lock held)."""
        return self._init_error is not None or self._ready() >= self._size

    def _started_now(self) -> bool:
        with self._lock:
            return self._started()

    def _timeout(self, now: float) -> float | None:
        """Seconds until the supervisor has something to do without being woken."""
        due: list[float] = [c.hard_at for c in self._children.values() if c.hard_at is not None]
        if self._children:
            due.append(self._next_exit_poll)
        if self._wants_children() and self._staying() < self._size:
            due.append(self._respawn_at)
        if not self._pending and any(c.idle for c in self._children.values()):
            due.extend(
                child.head_since + STEAL_AFTER
                for child in self._children.values()
                if self._stealable(child)
            )
        return max(0.0, min(due) - now) if due else None

    def _receive(self, child: _Child, reports: list[JobOutcome], *, readable: bool = False) -> None:
        """Handle the messages ``child`` sent (``readable``: its pipe is known to be); reap it
        at end of file."""
        if not readable and not _readable(child):
            return
        frames = child.inbox.read()
        if frames is None:
            self._reap(child, _collect(child.pid), reports)
            return
        for data in frames:
            self._handle(child, data, reports)

    def _handle(self, child: _Child, data: bytes, reports: list[JobOutcome]) -> None:
        message: tuple[Any, ...]
        try:
            message = pickle.loads(data)
        except Exception as exc:  # a value the parent cannot load: count it for the job it
            # runs, and retire the child
            why = f"the parent could not unpickle the child's reply: {exc!r}"
            message = (LOST, next(iter(child.jobs), None), why, False)
            self._stop_child(child)
        kind = message[0]
        if kind == READY:
            child.ready = True
            if child.retiring:
                self._stop_child(child)
            return
        if kind == INIT_FAILED:
            child.retiring = True  # it exits by itself
            self._failed_to_start(f"its initializer raised:\n{message[1]}")
            return
        if kind == RETURNED:
            child.takes = max(child.takes - 1, 0)
            returned: list[int] = message[1]
            self._give_back(child, returned, reports)
            return
        seq: int | None = message[1]
        value, retire = message[2], bool(message[3])
        job = None if seq is None else child.jobs.pop(seq, None)
        if job is not None:
            child.cancelled.discard(seq)
            reports.append(JobOutcome(job.task_id, "done" if kind == DONE else "lost", value))
            if child.fated == seq:  # the reply came first; the child was signalled all the same
                child.fate = child.fated = None
                child.retiring = True
            self._arm(child, time.monotonic())
        if retire:
            child.retiring = True  # it exits by itself, running nothing more
            self._give_back(child, list(child.jobs), reports)
        elif child.retiring and not child.jobs:
            self._stop_child(child)

    def _reap(self, child: _Child, how: str, reports: list[JobOutcome]) -> None:
        """Forget a child that exited; the job it ran gets its outcome, the others go back."""
        del self._children[child.conn]
        del self._by_fd[child.inbox.fd]
        self._poller.unregister(child.inbox.fd)
        child.conn.close()
        if child.jobs:
            seq, job = next(iter(child.jobs.items()))
            del child.jobs[seq]
            if seq in child.cancelled:
                fate: Fate = ("terminated", _TAKEN_BACK)
            elif child.fated == seq and child.fate is not None:
                fate = child.fate
            else:
                fate = ("lost", f"the child process {child.pid} {how}")
            reports.append(JobOutcome(job.task_id, *fate))
            self._give_back(child, list(child.jobs), reports)
        elif child.retiring or self._state != _RUNNING:
            return
        elif child.ready:
            logger.warning("idle prefork child %d %s; replacing it", child.pid, how)
        else:
            self._failed_to_start(f"the child process {child.pid} {how} before it was ready")

    def _give_back(self, child: _Child, seqs: list[int], reports: list[JobOutcome]) -> None:
        """Jobs ``child`` will not run (never started): to the front of the parent's queue, in
        order; reported instead when ``terminate`` cancelled them or the pool is killing."""
        back: list[tuple[int, PoolJob, bytes]] = []
        for seq in seqs:
            job = child.jobs.pop(seq, None)
            if job is None:
                continue
            if seq in child.cancelled:
                child.cancelled.discard(seq)
                reports.append(JobOutcome(job.task_id, "terminated", _TAKEN_BACK))
            elif self._killing:
                reports.append(never_started(job))
            else:
                soft, _ = limits(job)
                back.append((seq, job, dumps((job.task_id, job.target, job.args, soft))))
        self._pending.extendleft(reversed(back))
        if not child.jobs:
            child.hard_at = None

    def _failed_to_start(self, why: str) -> None:
        """A new child could not start: fail start(), or fork again after a pause."""
        logger.error(
            "a prefork child could not start (%s); forking again in %gs", why, _RESPAWN_DELAY
        )
        self._init_error = why
        self._respawn_at = time.monotonic() + _RESPAWN_DELAY

    def _poll_exits(self, reports: list[JobOutcome]) -> None:
        for child in list(self._children.values()):
            how = _exited(child.pid)
            if how is None:
                continue
            while _readable(child):  # what it said before it died still counts
                frames = child.inbox.read()
                if frames is None:
                    break
                for data in frames:
                    self._handle(child, data, reports)
            self._reap(child, how, reports)

    def _expire(self, now: float) -> None:
        for child in self._children.values():
            if child.jobs and child.hard_at is not None and now >= child.hard_at:
                seq, job = next(iter(child.jobs.items()))
                child.fate, child.fated = timed_out(job), seq
                child.hard_at = None
                _kill(child.pid, signal.SIGKILL)

    def _rebalance(self, now: float) -> None:
        """Give the jobs queued behind a long-running one to an idle child."""
        if self._pending or not any(c.idle for c in self._children.values()):
            return
        for child in self._children.values():
            if self._stealable(child) and now >= child.head_since + STEAL_AFTER:
                self._take(child, list(child.jobs)[1:])

    # -- helpers, called with the lock held --------------------------------------------------

    @staticmethod
    def _stealable(child: _Child) -> bool:
        return len(child.jobs) > 1 and child.takes == 0 and child.fate is None

    def _wants_children(self) -> bool:
        """Whether lost children are replaced: while running, and while jobs still wait."""
        return self._state == _RUNNING or bool(self._pending)

    def _drop_pending(self) -> list[JobOutcome]:
        dropped = [never_started(job) for _, job, _ in self._pending]
        self._pending.clear()
        return dropped

    def _ready(self) -> int:
        return sum(1 for c in self._children.values() if c.ready and not c.retiring)

    def _staying(self) -> int:
        return sum(1 for c in self._children.values() if not c.retiring)

    def _spawn(self) -> None:
        assert self._wake_fds is not None
        pid, conn = spawn(self._options, self._children, self._wake_fds)
        child = self._children[conn] = _Child(pid, conn)
        self._by_fd[child.inbox.fd] = child
        self._poller.register(child.inbox.fd, select.POLLIN)

    def _refill(self, now: float) -> None:
        """Fork children up to the pool's size, unless a child just failed to start.

        Only the supervisor forks, so children are forked from one thread, one at a time.
        """
        if not self._wants_children() or now < self._respawn_at:
            return
        try:
            for _ in range(self._size - self._staying()):
                self._spawn()
        except OSError as exc:
            self._failed_to_start(f"fork() failed: {exc}")

    def _dispatch(self) -> None:
        """Send waiting jobs to the least loaded open children, one message per child."""
        pending = self._pending
        if not pending:
            return
        children = [child for child in self._children.values() if child.open]
        if not children:
            return
        now = time.monotonic()
        batches: dict[_Child, list[tuple[int, PoolJob, bytes]]] = {}
        while pending:
            seq, job, payload = pending[0]
            child = min(children, key=_load)
            if len(child.jobs) >= DEPTH or (child.jobs and job.time_limit is not None):
                break  # full, or a job with a hard limit waits for an idle child
            pending.popleft()
            child.jobs[seq] = job
            if len(child.jobs) == 1:
                self._arm(child, now)
            batches.setdefault(child, []).append((seq, job, payload))
        for child, batch in batches.items():
            try:
                child.conn.send_bytes(dumps((JOBS, [(seq, payload) for seq, _, payload in batch])))
            except OSError:  # it just died: its EOF reaps it; the jobs wait for another child
                for seq, _, _ in batch:
                    del child.jobs[seq]
                child.hard_at, child.retiring = None, True
                pending.extendleft(reversed(batch))

    def _arm(self, child: _Child, now: float) -> None:
        """The child's first job changed: time it from now."""
        child.head_since = now
        head = next(iter(child.jobs.values()), None)
        limit = None if head is None else head.time_limit
        child.hard_at = None if limit is None else now + limit

    def _take(self, child: _Child, seqs: list[int]) -> None:
        """Ask ``child`` to give back these jobs if it has not started them."""
        child.takes += 1
        with contextlib.suppress(OSError):  # already gone: its EOF reaps it
            child.conn.send_bytes(dumps((TAKE, seqs)))

    def _stop_child(self, child: _Child) -> None:
        """Tell a child to exit after what it is doing now (giving back what it queued)."""
        child.retiring = True
        with contextlib.suppress(OSError):  # already gone: its EOF reaps it
            child.conn.send_bytes(_STOP)

    def _close_wake_fds(self) -> None:
        fds = self._wake_fds
        if fds is not None:
            self._wake_fds = None  # first: wake() reads it without the lock
            self._poller.unregister(fds[0])
            for fd in fds:
                os.close(fd)

    def _wake(self) -> None:
        if self._wake_fds is None:
            return
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the supervisor anyway
            os.write(self._wake_fds[1], b"\0")

    def _report(self, outcome: JobOutcome) -> None:
        on_outcome = self._on_outcome
        assert on_outcome is not None, "jobs are only accepted after start()"
        try:
            on_outcome(outcome)
        except Exception:  # the worker's callback failing must not kill the supervisor
            logger.exception("on_outcome failed for job %s", outcome.task_id)


def _load(child: _Child) -> int:
    return len(child.jobs)


def _readable(child: _Child) -> bool:
    return readable(child.inbox.fd)


def _kill(pid: int, sig: int) -> None:
    """Signal a child that is not reaped yet (so its pid cannot belong to anyone else)."""
    with contextlib.suppress(ProcessLookupError):  # reaped by someone else (SIGCHLD ignored)
        os.kill(pid, sig)


def _exited(pid: int) -> str | None:
    """How the child exited if it did, else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "exited (someone else collected its exit status)"
    return _describe(status) if done else None


def _collect(pid: int) -> str:
    """Reap a child whose pipe closed; one that lingers cannot talk to us any more: kill it."""
    deadline = time.monotonic() + _EXIT_GRACE
    while (how := _exited(pid)) is None:
        if time.monotonic() >= deadline:
            _kill(pid, signal.SIGKILL)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                return "exited (someone else collected its exit status)"
            return _describe(status)
        time.sleep(0.001)
    return how


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
