"""The consumer: the one thread that owns a worker's bookkeeping.

Everything that changes what the worker holds happens here, in order: deliveries from the
fetcher, outcomes from the pool (which may report from its own threads), remote control
requests (which arrive on the transport's thread). Each hands its event to a queue this
thread blocks on, so there are no locks around the state and no busy waiting: the thread
sleeps until an event comes or a timer (a rate-limited task's token, the shutdown deadline)
is due.

A delivery is checked on receipt, cheapest check first: delivered too often, undecodable or
unknown (dead letters, with the reason); revoked or expired (REVOKED, acked); an ETA more than
``ETA_HOLD`` ahead (back to the broker, which holds delayed messages); a nearer ETA waits here,
on a timer, since the message is in hand already (a task never starts before its ETA, as in
Celery); then it waits for its rate limit and a free pool slot.

Acknowledgements of settled tasks are collected and sent together, once ``ACK_BATCH`` of them
wait or the oldest has waited ``ACK_DELAY`` (each is a broker round trip, which costs more than
running a short task); a task's result is stored before its outcome reaches this thread, so a
worker killed meanwhile only has the broker deliver again tasks that did run (acks_late's
at-least-once), never loses one. Early acknowledgements (acks_late off) are sent at once, when
their jobs go to the pool; to the prefork pool, which queues jobs in its processes, jobs go in
batches of at least ``DISPATCH_BATCH`` while every process still has work queued, so that one
message and one acknowledgement serve many tasks.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.contracts import Delivery, JobOutcome, Pool, PoolJob, Transport, TransportError
from taskq.contracts import dead_letter_queue as dlq_of
from taskq.exceptions import TimeLimitExceeded, WorkerLostError
from taskq.execution import (
    ACK,
    DEAD_LETTER,
    REQUEUE,
    Execution,
    mark_failed,
    mark_revoked,
    request_from,
)
from taskq.rates import parse_rate
from taskq_protocol import TaskMessage
from taskq_protocol.message import safe_repr
from taskq_worker.decoding import Decoder, Received, Undeliverable
from taskq_worker.fetcher import Holdings
from taskq_worker.jobs import Job, Policy
from taskq_worker.pace import PERIOD, Pace
from taskq_worker.pools.queueing import DrivenPool, QueueingPool
from taskq_worker.ratelimit import RateLimits
from taskq_worker.revoked import RevokedIds
from taskq_worker.settings import WorkerSettings
from taskq_worker.target import run_task

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.task import Task

__all__ = ["ACK_BATCH", "ACK_DELAY", "Consumer", "DISPATCH_BATCH", "ETA_HOLD", "SLOT_POLL"]

logger = logging.getLogger(__name__)

#: An ETA at most this far ahead waits in the worker, which holds the message already; a later
#: one goes back to the broker, so the worker holds no more than the transport hands out.
ETA_HOLD = 1.0
#: How often to look for a free pool slot while jobs wait and the pool is short of processes.
SLOT_POLL = 0.05
#: Acknowledgements are sent once this many wait, or the oldest waited ACK_DELAY seconds.
ACK_BATCH = 32
ACK_DELAY = 0.005
#: The fewest jobs applied at once to a queueing pool that holds at least this many already.
DISPATCH_BATCH = 8

# Event kinds on the consumer's queue.
_DELIVERIES, _OUTCOME, _CONTROL, _WAKE = range(4)


class Consumer:
    """Receives, dispatches and settles the tasks of one worker (see the module docstring).

    ``deliver``, ``on_outcome``, ``on_control`` and ``stop`` may be called from any thread;
    everything else runs on the thread that calls :meth:`run`.
    """

    def __init__(
        self,
        app: TaskQ,
        *,
        transport: Transport,
        pool: Pool,
        settings: WorkerSettings,
        holdings: Holdings,
        queues: Sequence[str],
        hostname: str,
        key: int,
        control: Callable[[Consumer, Any], None],
    ) -> None:
        self.app = app
        self.transport = transport
        self.pool = pool
        #: The pool, when it queues jobs in its processes (prefork): jobs are applied by room.
        self.queueing = pool if isinstance(pool, QueueingPool) else None
        #: The pool, when this thread supervises it (prefork): it waits on the pool.
        self.driver = pool if isinstance(pool, DrivenPool) else None
        self.settings = settings
        self.holdings = holdings
        self.queues = list(queues)
        self.hostname = hostname
        self.key = key
        self._control = control
        self.decoder = Decoder(app.conf.accept_content)
        self.revoked = RevokedIds()
        self.limits: RateLimits | None = (
            None if settings.disable_rate_limits else RateLimits(self._rate_of)
        )
        self.ready: deque[Job] = deque()
        self.running: dict[str, Job] = {}
        #: Jobs whose task id is running already, started when that run ends.
        self._parked: dict[str, list[Job]] = {}
        #: Jobs whose ETA is near but not yet here: a heap of (eta, arrival, job).
        self._scheduled: list[tuple[float, int, Job]] = []
        self._arrivals = itertools.count()
        self.totals: dict[str, int] = {}
        self._policies: dict[str, Policy] = {}
        self._acks: list[Delivery] = []
        #: When the oldest of ``_acks`` was collected (``time.monotonic()``).
        self._acks_since = 0.0
        self._events: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self.started_at = time.monotonic()
        self.pace = Pace(settings.concurrency, self.started_at)
        # Set by stop() from any thread; plain attribute writes are atomic.
        self.stopping = False
        self.cold = False
        self._recalled = False
        self._deadline: float | None = None
        #: True while the pool's apply() runs on this thread (the solo pool runs tasks there).
        self.applying = False

    def start_pool(self) -> None:
        """Start the pool, reporting to this consumer (supervised by :meth:`run`'s thread
        when the pool can be driven)."""
        if self.driver is not None:
            self.driver.start_driven(self.on_outcome)
        else:
            self.pool.start(self.on_outcome)

    # -- from any thread ---------------------------------------------------------------------

    def deliver(self, deliveries: list[Delivery]) -> None:
        self._events.put((_DELIVERIES, deliveries))
        self._wake()

    def on_outcome(self, outcome: JobOutcome) -> None:
        # Room for the next message at once, not when this thread gets to the outcome: the
        # fetcher then fetches while the pool runs what is already here (with the solo pool,
        # this thread is the one running it).
        self.holdings.done()
        self._events.put((_OUTCOME, outcome))

    def on_control(self, envelope: Any) -> None:
        self._events.put((_CONTROL, envelope))
        self._wake()

    def stop(self, *, cold: bool = False) -> None:
        """Stop taking work; ``cold``: also stop waiting for running tasks."""
        self.stopping = True
        if cold:
            self.cold = True
        self._events.put((_WAKE, None))
        self._wake()

    def _wake(self) -> None:
        """A driven pool's step() is where this thread waits: end the wait."""
        if self.driver is not None:
            self.driver.wake()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped: warm, once running tasks are settled; cold, at once."""
        events, driver = self._events, self.driver
        while True:
            timeout = self._timeout()
            if driver is not None:
                # Wait on the pool's children and wake-ups at once; their outcomes, reported
                # on this thread, and events from other threads are then in the queue.
                driver.step(0.0 if not events.empty() else timeout)
                timeout = 0.0
            try:
                event = events.get(timeout=timeout) if timeout != 0.0 else events.get_nowait()
            except queue.Empty:
                event = None
            while event is not None and not self.cold:
                self._handle(event)
                try:
                    event = events.get_nowait()
                except queue.Empty:
                    event = None
            if self.cold:
                break
            window = self.pace.window(time.monotonic())
            if window is not None and window != self.holdings.extra:
                self.holdings.widen(0 if self.stopping else window)
            if self.stopping:
                self._recall()
            if self._scheduled and not self.stopping:
                self._release_scheduled()
            limits = self.limits
            if limits and not self.stopping:
                self.ready.extend(limits.release(time.monotonic()))
            self._dispatch()
            if self._top_up():
                self._dispatch()
            if self._acks and (
                self.stopping
                or len(self._acks) >= ACK_BATCH
                or time.monotonic() - self._acks_since >= ACK_DELAY
            ):
                self.flush()
            if self.stopping and self._finished():
                break
        self.flush()

    def _recall(self) -> None:
        """Warm shutdown: take back from the pool what it has not started, so that, never
        acknowledged, it returns to the broker (an early-acked job must run: it is acked)."""
        if self._recalled or self.queueing is None:
            return
        self._recalled = True
        for job in list(self.running.values()):
            if not job.acked and job.withdrawn is None and self.queueing.withdraw(job.id):
                job.withdrawn = "shutdown"

    def _timeout(self) -> float | None:
        """Seconds until the next timer is due (None: wait for an event)."""
        if self.stopping:
            if self._deadline is None and self.settings.shutdown_timeout is not None:
                self._deadline = time.monotonic() + self.settings.shutdown_timeout
            due = self._deadline
            return None if due is None else max(due - time.monotonic(), 0.0)
        waits: list[float] = []
        if self._acks:
            waits.append(max(self._acks_since + ACK_DELAY - time.monotonic(), 0.0))
        if self.holdings.extra:
            waits.append(PERIOD)  # to close the window if no task finishes meanwhile
        if self._scheduled:
            waits.append(max(self._scheduled[0][0] - time.time(), 0.0))
        if self.limits:
            due = self.limits.next_due()
            if due is not None:
                waits.append(max(due - time.monotonic(), 0.0))
        if self.ready and len(self.running) < self.settings.concurrency:
            # Jobs wait for a slot that no running job holds: the pool is replacing a process
            # and says nothing when it is back, so look again shortly.
            waits.append(SLOT_POLL)
        return min(waits) if waits else None

    def _finished(self) -> bool:
        if not self.running:
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            logger.warning(
                "worker_shutdown_timeout (%gs) passed with %d tasks running: stopping them",
                self.settings.shutdown_timeout,
                len(self.running),
            )
            self.cold = True
            return True
        return False

    def _handle(self, event: tuple[int, Any]) -> None:
        kind, payload = event
        if kind == _DELIVERIES:
            for delivery in payload:
                self._receive(delivery)
        elif kind == _OUTCOME:
            self._finish(payload)
        elif kind == _CONTROL:
            self._control(self, payload)

    # -- receiving ---------------------------------------------------------------------------

    def _top_up(self) -> bool:
        """Fetch what the prefetch has room for, without waiting, unless the fetcher thread
        fetches (see :mod:`taskq_worker.fetcher`); True if messages came."""
        holdings = self.holdings
        if self.stopping or holdings.handed_over:
            return False
        room = holdings.claim()
        if room <= 0:
            return False
        try:
            batch = self.transport.fetch(self.queues, room, 0.0)
        except Exception as exc:  # the fetcher thread retries, or stops the worker
            holdings.taken((), room)
            logger.warning("Broker error while fetching (%s); the fetcher thread retries", exc)
            holdings.hand_over()
            return False
        holdings.taken(batch, room)
        if len(batch) < room:
            holdings.hand_over()
        for delivery in batch:
            self._receive(delivery)
        return bool(batch)

    def _receive(self, delivery: Delivery) -> None:
        if self.stopping:
            return  # left unacked: closing the transport gives it back to its queue
        if delivery.deliveries > self.settings.max_deliveries:
            self._refuse(
                delivery,
                f"delivered {delivery.deliveries} times, more than worker_max_deliveries "
                f"({self.settings.max_deliveries}): it may be killing its worker",
            )
            return
        try:
            received = self.decoder.receive(delivery)
        except Undeliverable as exc:
            self._refuse(delivery, str(exc))
            return
        task = self.app.tasks.get(received.name)
        if task is None:
            message = self._whole(delivery, received)
            if message is None:
                return
            signals.task_unknown.send(
                sender=None, name=message.name, id=message.id, message=message
            )
            self._refuse(
                delivery, f"unknown task {message.name!r}: it is not registered in this worker"
            )
            return
        if received.id in self.revoked:
            self._drop_revoked(delivery, received, "revoked")
            return
        if received.expires is not None and received.expires <= time.time():
            self._drop_revoked(delivery, received, "expired")
            return
        eta = received.eta
        if eta is not None:
            now = time.time()
            if eta > now + ETA_HOLD:
                self._postpone(delivery, received, eta)
                return
            if eta <= now:
                eta = None
        policy = self._policy(task)
        if not policy.acks_late and self._whole(delivery, received) is None:
            return  # acknowledged before it runs: nothing could dead-letter it afterwards
        envelope = delivery.envelope
        job = Job(
            delivery,
            received,
            policy,
            time.time(),
            delivery_info={
                "exchange": envelope.exchange,
                "routing_key": envelope.routing_key or delivery.queue,
                "queue": delivery.queue,
                "priority": envelope.priority,
                "redelivered": delivery.redelivered,
            },
        )
        if signals.task_received.receivers:
            message = self._whole(delivery, received)
            if message is None:
                return
            request = request_from(
                message, hostname=self.hostname, delivery_info=job.delivery_info, is_eager=False
            )
            signals.task_received.send(sender=self, request=request)
        logger.info("Task %s[%s] received", received.name, received.id)
        if eta is not None:
            heapq.heappush(self._scheduled, (eta, next(self._arrivals), job))
            return
        self._admit(job)

    def _admit(self, job: Job) -> None:
        """To the rate limit's queue, or ready to run."""
        limits = self.limits
        if limits is None or limits.admit(job, time.monotonic()):
            self.ready.append(job)

    def _release_scheduled(self) -> None:
        """Admit the jobs whose ETA has come."""
        scheduled, now = self._scheduled, time.time()
        while scheduled and scheduled[0][0] <= now:
            self._admit(heapq.heappop(scheduled)[2])

    def _whole(self, delivery: Delivery, received: Received) -> TaskMessage | None:
        """The whole message, or None once a message that cannot be one was dead-lettered."""
        try:
            return received.message
        except Undeliverable as exc:
            self._refuse(delivery, str(exc))
            return None

    def _refuse(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter a delivery that never became a job."""
        self._dead_letter(delivery, reason, _label(delivery))
        self.holdings.done()

    def _drop_revoked(self, delivery: Delivery, received: Received, reason: str) -> None:
        message = self._whole(delivery, received)
        if message is None:
            return
        logger.info("Discarding %s task: %s[%s]", reason, message.name, message.id)
        self._record(mark_revoked, received, reason)
        self._ack_later(delivery)
        self.holdings.done()

    def _postpone(self, delivery: Delivery, message: Received, eta: float) -> None:
        """An ETA still ahead: give the message to the broker to hold, not to this worker."""
        try:
            self.transport.publish(delivery.queue, delivery.envelope, eta=eta)
        except TransportError as exc:
            logger.error(
                "Task %s[%s] has an ETA ahead but could not be sent back to the broker (%s); "
                "it returns after the visibility timeout",
                message.name,
                message.id,
                exc,
            )
            self.holdings.settled((delivery,))
        else:
            logger.info(
                "Task %s[%s] has an ETA %.1fs ahead: sent back to the broker to wait there",
                message.name,
                message.id,
                eta - time.time(),
            )
            self._ack_later(delivery)
        self.holdings.done()

    # -- dispatching -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        ready, running, pool, queueing = self.ready, self.running, self.pool, self.queueing
        while ready and not self.stopping:
            free = pool.free_slots if queueing is None else queueing.room
            if free <= 0:
                return
            if queueing is not None and free < DISPATCH_BATCH <= len(running):
                # Every process has work queued: wait to send more at once.
                return
            batch: list[Job] = []
            while ready and len(batch) < free:
                job = ready.popleft()
                if job.id in running:
                    self._parked.setdefault(job.id, []).append(job)
                    continue
                running[job.id] = job
                batch.append(job)
            early = [job.delivery for job in batch if not job.policy.acks_late]
            if queueing is None:
                if early:
                    # Acknowledged before the task runs (acks_late is off for these tasks):
                    # the solo pool runs it within apply().
                    self._acknowledge_early(batch, early)
                for job in batch:
                    self._start(job)
            elif batch:
                queueing.apply_many([self._pool_job(job) for job in batch])
                if early:
                    # As Celery acknowledges once a child took the job: the job is on its way
                    # while the broker round trip runs, and this thread alone reports its end.
                    self._acknowledge_early(batch, early)

    def _acknowledge_early(self, batch: list[Job], early: list[Delivery]) -> None:
        self._ack_now(early)
        for job in batch:
            job.acked = not job.policy.acks_late

    def _start(self, job: Job) -> None:
        pool_job = self._pool_job(job)
        self.applying = True
        try:
            self.pool.apply(pool_job)
        finally:
            self.applying = False

    def _pool_job(self, job: Job) -> PoolJob:
        hard, soft = job.limits()
        job.started = time.time()
        self.totals[job.name] = self.totals.get(job.name, 0) + 1
        return PoolJob(job.id, run_task, (self.key, job.received, job.delivery_info), soft, hard)

    # -- settling ----------------------------------------------------------------------------

    def _finish(self, outcome: JobOutcome) -> None:
        self.pace.finished += 1
        job = self.running.pop(outcome.task_id, None)
        if job is None:
            logger.warning(
                "The pool reported %r for task %s, which is not running",
                outcome.outcome,
                outcome.task_id,
            )
            return
        parked = self._parked.pop(job.id, None)
        if parked:
            self.ready.extendleft(reversed(parked))
        kind = outcome.outcome
        if kind == "done":
            value = outcome.value
            if isinstance(value, Execution):
                self._settle(job, value.settle, value.reason)
            else:
                logger.error(
                    "Task %s[%s]: the pool returned %s instead of an execution",
                    job.name,
                    job.id,
                    safe_repr(value, 256),
                )
                self._settle(job, DEAD_LETTER, f"internal error: {safe_repr(value, 256)}")
        elif kind == "lost":
            self._lost(job, outcome.value)
        elif kind == "timeout":
            self._timed_out(job)
        elif kind == "terminated" and job.withdrawn == "shutdown":
            # Taken back before it started: left unacknowledged, the broker gets it back.
            logger.debug("Task %s[%s] not started before the shutdown", job.name, job.id)
        elif kind == "terminated" and job.withdrawn == "revoked":
            logger.info("Discarding revoked task: %s[%s]", job.name, job.id)
            self._record(mark_revoked, job.received, "revoked")
            self._settle(job, ACK, None)
        elif kind == "terminated":
            logger.warning("Task %s[%s] terminated", job.name, job.id)
            self._record(
                mark_revoked,
                job.received,
                "terminated",
                terminated=True,
                signum=job.terminate_signal,
            )
            self._settle(job, ACK, None)
        else:
            logger.error("Task %s[%s]: unknown pool outcome %r", job.name, job.id, kind)
            self._settle(job, DEAD_LETTER, f"internal error: unknown pool outcome {kind!r}")

    def _lost(self, job: Job, detail: object) -> None:
        policy = job.policy
        logger.error(
            "Task %s[%s]: the process running it died (%s)", job.name, job.id, detail or "?"
        )
        if policy.reject_on_worker_lost and not job.acked:
            logger.warning("Task %s[%s] requeued (reject_on_worker_lost)", job.name, job.id)
            self._settle(job, REQUEUE, None)
            return
        error = WorkerLostError(f"Worker exited prematurely: {detail or 'unknown cause'}")
        self._record(mark_failed, job.received, error)
        self._after_failure(job, error)

    def _timed_out(self, job: Job) -> None:
        hard, _ = job.limits()
        logger.error("Hard time limit (%ss) exceeded for %s[%s]", hard, job.name, job.id)
        error = TimeLimitExceeded(hard)
        self._record(mark_failed, job.received, error)
        self._after_failure(job, error)

    def _after_failure(self, job: Job, error: Exception) -> None:
        if job.policy.acks_on_failure_or_timeout:
            self._settle(job, ACK, None)
        else:
            self._settle(job, DEAD_LETTER, f"task failed: {error!r}")

    def _settle(self, job: Job, how: str, reason: str | None) -> None:
        if job.acked:
            if how != ACK:
                logger.warning(
                    "Task %s[%s] asked to %s (%s), but its message was acknowledged before it "
                    "ran (acks_late is off)",
                    job.name,
                    job.id,
                    how.replace("_", "-"),
                    reason,
                )
            return
        job.acked = True
        if how == ACK:
            self._ack_later(job.delivery)
        elif how == REQUEUE:
            try:
                self.transport.reject(job.delivery, requeue=True)
            except TransportError as exc:
                logger.error("Could not requeue %s[%s]: %s", job.name, job.id, exc)
            self.holdings.settled((job.delivery,))
        else:
            self._dead_letter(job.delivery, reason or "rejected", f"Task {job.name}[{job.id}]")

    def _dead_letter(self, delivery: Delivery, reason: str, label: str) -> None:
        logger.error("%s moved to dead-letter queue %s: %s", label, dlq_of(delivery.queue), reason)
        try:
            self.transport.dead_letter(delivery, reason)
        except TransportError as exc:
            logger.error("Could not dead-letter %s: %s", label, exc)
        self.holdings.settled((delivery,))

    def _ack_now(self, deliveries: list[Delivery]) -> None:
        try:
            self.transport.ack(deliveries)
        except TransportError as exc:
            logger.error("Could not acknowledge %d messages: %s", len(deliveries), exc)
        self.holdings.settled(deliveries)

    def _ack_later(self, delivery: Delivery) -> None:
        if not self._acks:
            self._acks_since = time.monotonic()
        self._acks.append(delivery)

    def flush(self) -> None:
        """Send the acknowledgements collected so far, in one call."""
        if self._acks:
            acks, self._acks = self._acks, []
            self._ack_now(acks)

    def _record(self, mark: Callable[..., None], received: Received, *args: Any, **kw: Any) -> None:
        """Store a state the task could not store itself; a failure is logged, not raised."""
        try:
            mark(self.app, received.message, *args, hostname=self.hostname, **kw)
        except Exception:
            logger.exception("Could not record the state of %s[%s]", received.name, received.id)

    # -- per task type -----------------------------------------------------------------------

    def _policy(self, task: Task[Any, Any]) -> Policy:
        policy = self._policies.get(task.name)
        if policy is None:
            conf, settings = self.app.conf, self.settings
            policy = self._policies[task.name] = Policy(
                acks_late=_first(task.acks_late, conf.task_acks_late),
                acks_on_failure_or_timeout=_first(
                    task.acks_on_failure_or_timeout, conf.task_acks_on_failure_or_timeout
                ),
                reject_on_worker_lost=bool(
                    _first(task.reject_on_worker_lost, conf.task_reject_on_worker_lost)
                ),
                time_limit=_first(task.time_limit, settings.time_limit),
                soft_time_limit=_first(task.soft_time_limit, settings.soft_time_limit),
                throws=tuple(task.throws),
            )
        return policy

    def _rate_of(self, name: str) -> float | None:
        task = self.app.tasks.get(name)
        rate = task.rate_limit if task is not None else None
        if rate is None:
            rate = self.app.conf.task_default_rate_limit
        return parse_rate(rate)

    # -- for remote control ------------------------------------------------------------------

    def revoke(self, task_ids: list[str], *, terminate: bool, signum: int | None) -> list[str]:
        """Remember the ids, drop their waiting messages, and with ``terminate`` stop their
        running tasks. Returns the ids that were running and were signalled."""
        self.revoked.add(task_ids)
        wanted = set(task_ids)
        dropped = [job for job in self.ready if job.id in wanted]
        if dropped:
            self.ready = deque(job for job in self.ready if job.id not in wanted)
        if self.limits:
            dropped += self.limits.remove(lambda job: job.id not in wanted)
        for task_id in wanted & set(self._parked):
            dropped += self._parked.pop(task_id)
        if any(job.id in wanted for _, _, job in self._scheduled):
            dropped += [job for _, _, job in self._scheduled if job.id in wanted]
            self._scheduled = [item for item in self._scheduled if item[2].id not in wanted]
            heapq.heapify(self._scheduled)
        for job in dropped:
            self._drop_revoked(job.delivery, job.received, "revoked")
        if not terminate:
            if self.queueing is not None:  # applied to the pool but maybe not started yet
                for task_id in wanted:
                    job = self.running.get(task_id)
                    if job is not None and self.queueing.withdraw(task_id):
                        job.withdrawn = "revoked"
            return []
        signalled: list[str] = []
        for task_id in task_ids:
            job = self.running.get(task_id)
            if job is not None and self.pool.terminate(task_id, signum):
                job.terminate_signal = signum
                signalled.append(task_id)
        return signalled

    def set_rate_limit(self, name: str, rate: float | None) -> bool:
        """False when rate limits are disabled in this worker."""
        if self.limits is None:
            return False
        self.limits.set_rate(name, rate)
        return True

    def scheduled(self) -> list[tuple[float, Job]]:
        """Jobs held until their near ETA (a Unix time), soonest first: Celery's
        ``inspect scheduled``."""
        return [(eta, job) for eta, _, job in sorted(self._scheduled)]

    def waiting(self) -> list[Job]:
        """Jobs received, due and not started: ready, rate-limited and parked ones (Celery's
        ``inspect reserved``; a job waiting for its ETA is reserved once it is due)."""
        jobs = list(self.ready)
        if self.limits:
            jobs += list(self.limits)
        for parked in self._parked.values():
            jobs += parked
        return jobs

    def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "clock": "0",
            "uptime": int(time.monotonic() - self.started_at),
            "total": dict(self.totals),
            "pool": {
                "implementation": self.pool.name,
                "max-concurrency": self.settings.concurrency,
                "free-slots": self.pool.free_slots,
            },
            "prefetch_count": self.settings.prefetch_limit,
            "held": self.holdings.count,
        }


def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def _label(delivery: Delivery) -> str:
    """How a log line names a delivery that may not be decodable."""
    headers = delivery.envelope.headers
    name, task_id = headers.get("task"), headers.get("id")
    if isinstance(name, str) and isinstance(task_id, str):
        return f"Task {name}[{task_id}]"
    return f"Message {delivery.tag} from {delivery.queue!r}"
